// A standard wasi:http hello in JavaScript, built with componentize-js (StarlingMonkey):
// the fetch-event API over wasi:http/incoming-handler. Nothing project-specific in it.
addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  console.log(`wasi-hello-js: ${event.request.method} ${url.pathname}`);
  event.respondWith(
    new Response(`Hello from JavaScript at ${url.pathname}!\n`, {
      headers: { "content-type": "text/plain" },
    }),
  );
});
