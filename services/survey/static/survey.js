// Keymoment survey page: progressive enhancement of the plain HTML form.
//
// Without JavaScript the form works as it is ("save and finish later" posts the
// answers given so far). With it, each answer is saved as it is given (a choice at
// once, typing after a pause) and whatever is unsaved when the page is left goes out
// with navigator.sendBeacon, so reopening the link shows the answers kept.
(() => {
  "use strict";
  const form = document.querySelector("form[data-draft]");
  if (!form) return;
  const url = form.dataset.draft;
  let timer = null;
  let dirty = false;
  let submitting = false;

  const body = () => {
    const data = new URLSearchParams(new FormData(form));
    data.delete("save");
    return data;
  };

  async function save() {
    clearTimeout(timer);
    timer = null;
    if (!dirty || submitting) return;
    dirty = false;
    try {
      const response = await fetch(url, {
        method: "POST",
        body: body(),
        headers: { "X-Requested-With": "fetch" },
        credentials: "same-origin",
        cache: "no-store",
        keepalive: true,
      });
      if (response.status >= 500 || response.status === 429) dirty = true; // try again with the next change
      form.dataset.saved = String(response.ok);
    } catch {
      dirty = true;
    }
  }

  function soon(ms) {
    dirty = true;
    clearTimeout(timer);
    timer = setTimeout(save, ms);
  }

  function leave() {
    if (dirty && !submitting) {
      dirty = false;
      navigator.sendBeacon(url, body());
    }
  }

  form.addEventListener("change", () => soon(0));
  form.addEventListener("input", (event) => {
    if (event.target instanceof HTMLTextAreaElement) soon(700);
  });
  form.addEventListener("submit", (event) => {
    if (!event.submitter || !event.submitter.hasAttribute("formaction")) submitting = true;
    clearTimeout(timer);
  });
  window.addEventListener("pagehide", leave);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") leave();
  });
})();
