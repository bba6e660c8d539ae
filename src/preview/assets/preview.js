// briefing preview: live reload, views and the page's small comforts.
//
// /events sends {"version": N, "building": bool} after every rebuild. When N
// differs from this page's version, the page fetches itself again and swaps
// in the regions marked data-live, and gives each iframe its new document
// without a flash. Window scroll, the selected view (#view=…) and the form
// choices stay as they are.
(() => {
  "use strict";

  const versionMeta = document.querySelector('meta[name="briefing-version"]');
  let version = versionMeta ? Number(versionMeta.content) : 0;
  const live = document.getElementById("live");

  function setLive(state, text) {
    if (!live) return;
    live.dataset.state = state;
    const t = live.querySelector(".live-text");
    if (t) t.textContent = text;
  }

  // ---- Views: desktop + phone, desktop, phone, plain text, headers -------
  const VIEWS = ["both", "desktop", "phone", "text", "headers"];
  function currentView() {
    const m = /(?:^|[#&])view=([a-z]+)/.exec(location.hash);
    return m && VIEWS.includes(m[1]) ? m[1] : "both";
  }
  function applyView() {
    const v = currentView();
    document.body.dataset.view = v;
    document.querySelectorAll("[data-view-tab]").forEach((a) => {
      if (a.dataset.viewTab === v) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    fitFrames();
  }
  window.addEventListener("hashchange", applyView);

  // ---- Frames: as tall as their document, links open in a new tab --------
  function fit(frame) {
    try {
      const doc = frame.contentDocument;
      if (!doc || !doc.documentElement || !doc.body) return;
      const h = Math.max(doc.documentElement.scrollHeight, doc.body.scrollHeight);
      if (h > 0 && frame.offsetParent !== null) frame.style.height = h + "px";
      doc.querySelectorAll("a[href]").forEach((a) => {
        a.target = "_blank";
        a.rel = "noopener noreferrer";
      });
    } catch (_) {
      /* not same-origin: leave it */
    }
  }
  function fitFrames() {
    document.querySelectorAll("iframe[data-frame]").forEach(fit);
  }
  function watchFrame(frame) {
    frame.addEventListener("load", () => fit(frame));
    fit(frame);
  }
  document.querySelectorAll("iframe[data-frame]").forEach(watchFrame);
  window.addEventListener("resize", fitFrames);

  // Loads the new document in a hidden twin and swaps it in once it has
  // loaded, so the frame never goes blank and the page never jumps.
  function swapFrame(old, src) {
    const next = old.cloneNode(false);
    next.classList.add("loading");
    next.style.height = old.style.height;
    next.addEventListener(
      "load",
      () => {
        next.classList.remove("loading");
        old.remove();
        watchFrame(next);
      },
      { once: true }
    );
    next.src = src;
    old.after(next);
  }

  // ---- Live reload ---------------------------------------------------------
  let refreshing = false;
  let again = false;
  async function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    try {
      const res = await fetch(location.href, { cache: "no-store" });
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      document.title = doc.title;
      doc.querySelectorAll("[data-live]").forEach((fresh) => {
        const old = document.querySelector(`[data-live="${fresh.dataset.live}"]`);
        if (old && old.innerHTML !== fresh.innerHTML) old.innerHTML = fresh.innerHTML;
      });
      doc.querySelectorAll("iframe[data-frame]").forEach((fresh) => {
        const olds = document.querySelectorAll(`iframe[data-frame="${fresh.dataset.frame}"]`);
        const old = olds[olds.length - 1];
        const src = fresh.getAttribute("src");
        if (old && old.getAttribute("src") !== src) swapFrame(old, src);
      });
      const m = doc.querySelector('meta[name="briefing-version"]');
      if (m) {
        version = Number(m.content);
        if (versionMeta) versionMeta.content = m.content;
      }
      const t = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      setLive("live", "Updated " + t);
    } catch (e) {
      setLive("down", "Refresh failed");
    } finally {
      refreshing = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  function connect() {
    if (!window.EventSource) return;
    const es = new EventSource("/events");
    es.addEventListener("status", (e) => {
      let s;
      try {
        s = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      if (s.building) setLive("building", "Rebuilding…");
      else if (s.version !== version) refresh();
      else if (live && live.dataset.state !== "live") setLive("live", "Live");
    });
    es.addEventListener("error", () => setLive("down", "Reconnecting…"));
  }

  // ---- Forms: keep the view when the time or the subscriber changes -------
  function go(form) {
    const params = new URLSearchParams();
    new FormData(form).forEach((v, k) => {
      if (String(v).trim() !== "") params.set(k, v);
    });
    const q = params.toString();
    location.href = location.pathname + (q ? "?" + q : "") + location.hash;
  }
  document.addEventListener("change", (e) => {
    const form = e.target.closest && e.target.closest("form[data-autosubmit]");
    if (form && e.target.tagName === "SELECT") go(form);
  });
  document.addEventListener("submit", (e) => {
    const form = e.target.closest("form[data-autosubmit]");
    if (!form) return;
    e.preventDefault();
    go(form);
  });

  // ---- Scroll position across full reloads ---------------------------------
  const scrollKey = "briefing-scroll:" + location.pathname + location.search;
  window.addEventListener("pagehide", () => {
    sessionStorage.setItem(scrollKey, String(window.scrollY));
  });
  const saved = Number(sessionStorage.getItem(scrollKey));
  if (saved > 0) {
    // Frames grow as they load: restore once they have.
    window.addEventListener("load", () => window.scrollTo(0, saved));
  }

  applyView();
  connect();
})();
