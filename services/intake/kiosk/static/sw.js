// Keeps the kiosk page loadable while the network is down: the page and its
// assets are served from a cache, refreshed from the network whenever possible.
// Feedback submissions never pass through here (only GETs under /kiosk are handled).
const CACHE = "keymoment-kiosk-v1";
const ASSETS = ["/kiosk", "/kiosk/static/kiosk.css", "/kiosk/static/kiosk.js"]; // one page for every query

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(ASSETS)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname !== "/kiosk" && !url.pathname.startsWith("/kiosk/static/")) return;
  const key = url.pathname === "/kiosk" ? "/kiosk" : event.request; // one cached page for every query
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(key, copy));
        }
        return response;
      })
      .catch(() => caches.match(key).then((hit) => hit || Response.error())),
  );
});
