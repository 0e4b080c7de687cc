// Keymoment kiosk: seven faces on Carlzon's moment-of-truth scale (-3..+3),
// an optional comment, zh-CN/en, a thank-you screen and automatic reset.
//
// Nothing tapped is lost and nothing doubles: every tap is written to a queue
// in localStorage *before* anything is sent, with an idempotency key made on
// the device. The queue is flushed in order whenever the network allows
// (after each tap, on the browser's "online" event, and on a timer with
// exponential backoff); an entry leaves the queue only once intake answered.
// Intake derives the feedback id from the API key and the idempotency key, so
// a resend after a lost response yields the same id and no second event.
//
// The API key (limited to channel "kiosk") arrives once in the URL fragment
// (#key=...), which browsers never send to servers or in Referer headers; it
// is moved to localStorage and the fragment is removed from the address bar.
(() => {
  "use strict";

  const STORE = {
    key: "keymoment.kiosk.apiKey",
    queue: "keymoment.kiosk.queue",
    device: "keymoment.kiosk.deviceId",
    lang: "keymoment.kiosk.lang",
  };
  const params = new URLSearchParams(location.search);
  const seconds = (name, fallback, min, max) => {
    const value = Number(params.get(name));
    return Number.isFinite(value) && value >= min && value <= max ? value : fallback;
  };
  // An abandoned comment screen sends the tap without the comment after ?idle= seconds.
  const COMMENT_TIMEOUT_MS = seconds("idle", 20, 5, 300) * 1000;
  // The thank-you screen returns to the faces after ?reset= seconds.
  const THANKS_MS = seconds("reset", 4, 1, 60) * 1000;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 60000;
  const PERIODIC_MS = 15000;

  const TEXT = {
    "zh-CN": {
      question: "您对本次服务满意吗？",
      faces: { "-3": "非常糟糕", "-2": "很差", "-1": "较差", "0": "一般", "1": "较好", "2": "很好", "3": "非常棒" },
      commentTitle: "想多说几句吗？（可选）",
      placeholder: "请在此输入您的意见…",
      send: "提交",
      skip: "跳过",
      thanks: "谢谢您的反馈！",
      thanksSub: "我们会认真对待每一条意见。",
      other: "English",
      pending: (n) => `${n} 条待发送（网络恢复后自动发送）`,
      unauthorised: "本设备未获授权，请联系管理员",
      setupTitle: "设备尚未配置",
      setupText: "请使用管理员提供的完整链接打开本页（包含 location 参数和 #key=…）。",
    },
    en: {
      question: "How was your experience today?",
      faces: { "-3": "Terrible", "-2": "Bad", "-1": "Poor", "0": "OK", "1": "Good", "2": "Great", "3": "Excellent" },
      commentTitle: "Anything you'd like to add? (optional)",
      placeholder: "Type your comment here…",
      send: "Send",
      skip: "Skip",
      thanks: "Thank you for your feedback!",
      thanksSub: "Every comment is read.",
      other: "中文",
      pending: (n) => `${n} waiting to be sent (automatically when online)`,
      unauthorised: "This kiosk is not authorised; please contact staff",
      setupTitle: "This kiosk is not set up yet",
      setupText: "Open the full link from your administrator (with location=… and #key=…).",
    },
  };
  const COLOURS = { "-3": "#c62828", "-2": "#e4572e", "-1": "#f29e4c", "0": "#c9b23a", "1": "#9ccc65", "2": "#5cb85c", "3": "#2e7d32" };

  // ---- configuration -------------------------------------------------------------
  const config = {
    location: (params.get("location") || "").trim(),
    touchpoint: (params.get("touchpoint") || "").trim(),
    endpoint: "/v1/feedback",
  };

  function takeKeyFromFragment() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const key = fragment.get("key");
    if (key) {
      localStorage.setItem(STORE.key, key);
      history.replaceState(null, "", location.pathname + location.search); // the key leaves the address bar
    }
    return localStorage.getItem(STORE.key);
  }

  function randomId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16)); // plain-http LAN kiosks have no randomUUID
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function deviceId() {
    let id = params.get("device") || localStorage.getItem(STORE.device);
    if (!id) id = "kiosk-" + randomId().slice(0, 8);
    localStorage.setItem(STORE.device, id);
    return id;
  }

  // ---- the durable queue -----------------------------------------------------------
  function readQueue() {
    try { return JSON.parse(localStorage.getItem(STORE.queue) || "[]"); } catch { return []; }
  }
  function writeQueue(queue) { localStorage.setItem(STORE.queue, JSON.stringify(queue)); }
  function updateEntry(id, change) {
    writeQueue(readQueue().map((e) => (e.id === id ? { ...e, ...change } : e)));
  }

  let retryDelay = RETRY_MIN_MS;
  let retryTimer = null;
  let flushing = false;
  let unauthorised = false;

  function scheduleRetry(ms) {
    clearTimeout(retryTimer);
    const jitter = Math.random() * 0.3 * ms;
    retryTimer = setTimeout(flush, ms + jitter);
  }

  async function flush() {
    if (flushing) return;
    flushing = true;
    try {
      for (;;) {
        const next = readQueue().find((e) => e.ready);
        if (!next) break;
        const apiKey = localStorage.getItem(STORE.key);
        let response;
        try {
          response = await fetch(config.endpoint, {
            method: "POST",
            headers: { "Content-Type": "application/json", "X-API-Key": apiKey || "", "Idempotency-Key": next.id },
            body: JSON.stringify(next.body),
            credentials: "omit",
            referrerPolicy: "no-referrer",
            cache: "no-store",
          });
        } catch {
          scheduleRetry(retryDelay); // offline or intake unreachable: keep it, try later
          retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
          break;
        }
        if (response.ok) {
          writeQueue(readQueue().filter((e) => e.id !== next.id));
          retryDelay = RETRY_MIN_MS;
          unauthorised = false;
          continue;
        }
        if (response.status === 401 || response.status === 403) {
          unauthorised = true; // keep everything until an administrator fixes the key
          scheduleRetry(RETRY_MAX_MS);
          break;
        }
        if (response.status === 429 || response.status === 408 || response.status >= 500) {
          const after = Number(response.headers.get("Retry-After"));
          scheduleRetry(after > 0 ? after * 1000 : retryDelay);
          retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
          break;
        }
        // Any other 4xx can never succeed (e.g. 422): drop it rather than block the queue.
        console.warn("kiosk: feedback refused", response.status);
        writeQueue(readQueue().filter((e) => e.id !== next.id));
      }
    } finally {
      flushing = false;
      renderStatus();
    }
  }

  // ---- screens ---------------------------------------------------------------------
  let lang = (params.get("lang") || localStorage.getItem(STORE.lang) || ((navigator.language || "").startsWith("zh") ? "zh-CN" : "en"));
  if (!TEXT[lang]) lang = "zh-CN";

  let current = null; // the queue entry of the tap on screen
  let commentTimer = null;
  let thanksTimer = null;

  const $ = (id) => document.getElementById(id);

  function show(name) {
    document.querySelectorAll(".screen").forEach((s) => s.classList.toggle("active", s.id === `screen-${name}`));
  }

  function faceSvg(value) {
    const v = Number(value);
    const curve = v * 9; // mouth: down for negative, up for positive
    const brow = v <= -2 ? `<path d="M30 32 L44 38 M90 32 L76 38" stroke="#1d2330" stroke-width="5" stroke-linecap="round"/>` : "";
    return `<svg viewBox="0 0 120 120" aria-hidden="true"><circle cx="60" cy="60" r="56" fill="${COLOURS[value]}"/>
      ${brow}<circle cx="42" cy="50" r="7" fill="#1d2330"/><circle cx="78" cy="50" r="7" fill="#1d2330"/>
      <path d="M34 ${82 - curve / 2} Q60 ${82 + curve} 86 ${82 - curve / 2}" stroke="#1d2330" stroke-width="6" fill="none" stroke-linecap="round"/></svg>`;
  }

  function render() {
    const t = TEXT[lang];
    document.documentElement.lang = lang;
    $("question").textContent = t.question;
    $("comment-title").textContent = t.commentTitle;
    $("comment").placeholder = t.placeholder;
    $("send").textContent = t.send;
    $("skip").textContent = t.skip;
    $("thanks").textContent = t.thanks;
    $("thanks-sub").textContent = t.thanksSub;
    $("lang").textContent = t.other;
    $("setup-title").textContent = t.setupTitle;
    $("setup-text").textContent = t.setupText;
    $("place").textContent = [config.location, config.touchpoint].filter(Boolean).join(" · ");
    const faces = $("faces");
    faces.replaceChildren();
    for (let v = -3; v <= 3; v++) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "face";
      button.dataset.value = String(v);
      button.dataset.testid = `face${v}`;
      button.setAttribute("aria-label", t.faces[v]);
      button.innerHTML = faceSvg(String(v)) + `<span>${t.faces[v]}</span>`;
      button.addEventListener("click", () => tap(v));
      faces.appendChild(button);
    }
    renderStatus();
  }

  function renderStatus() {
    const t = TEXT[lang];
    const pending = readQueue().length;
    const status = $("status");
    status.textContent = unauthorised ? t.unauthorised : pending ? t.pending(pending) : "";
    status.classList.toggle("offline", pending > 0 || unauthorised);
    status.dataset.pending = String(pending);
  }

  function tap(value) {
    // Durable first: the tap is in the queue before the comment screen appears.
    const entry = {
      id: randomId(),
      ready: false,
      body: {
        channel: "kiosk",
        rating: { scale: "mot", value },
        location: config.location || undefined,
        touchpoint: config.touchpoint || undefined,
        occurred_at: new Date().toISOString(),
        kiosk: { device_id: deviceId(), face: value },
      },
    };
    writeQueue([...readQueue(), entry]);
    current = entry.id;
    $("comment").value = "";
    show("comment");
    $("comment").focus();
    armCommentTimeout();
    renderStatus();
  }

  function armCommentTimeout() {
    clearTimeout(commentTimer);
    commentTimer = setTimeout(() => finish(false), COMMENT_TIMEOUT_MS);
  }

  function finish(withComment) {
    clearTimeout(commentTimer);
    if (!current) return;
    const comment = withComment ? $("comment").value.trim() : "";
    const entry = readQueue().find((e) => e.id === current);
    if (entry) {
      const body = { ...entry.body };
      if (comment) { body.text = comment; body.language = lang === "zh-CN" ? "zh" : "en"; }
      updateEntry(current, { ready: true, body });
    }
    current = null;
    $("comment").value = "";
    show("thanks");
    clearTimeout(thanksTimer);
    thanksTimer = setTimeout(() => show("faces"), THANKS_MS);
    flush();
  }

  function boot() {
    const apiKey = takeKeyFromFragment();
    // Taps left on the comment screen when the page was closed or reloaded are still taps.
    writeQueue(readQueue().map((e) => ({ ...e, ready: true })));
    render();
    $("lang").addEventListener("click", () => {
      lang = lang === "zh-CN" ? "en" : "zh-CN";
      localStorage.setItem(STORE.lang, lang);
      render();
    });
    $("send").addEventListener("click", () => finish(true));
    $("skip").addEventListener("click", () => finish(false));
    $("comment").addEventListener("input", armCommentTimeout);
    $("thanks").parentElement.addEventListener("click", () => { clearTimeout(thanksTimer); show("faces"); });
    window.addEventListener("online", () => { retryDelay = RETRY_MIN_MS; flush(); });
    setInterval(flush, PERIODIC_MS);
    if (!apiKey || !config.location) show("setup"); else show("faces");
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/kiosk/sw.js", { scope: "/kiosk" }).catch(() => {});
    }
    flush();
  }

  document.addEventListener("DOMContentLoaded", boot);
})();
