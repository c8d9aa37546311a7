// A stand-in for Spotify's iFrame API (https://open.spotify.com/embed/iframe-api/v1), for the browser
// tests, which have no network: the surface the page uses (onSpotifyIframeApiReady, createController,
// and a controller's loadUri, play, pause, addListener), with what the page asked kept in
// window.fakeSpotify.log and each controller's emit(name, data) to send it an event as the embed would.
(() => {
  const log = [];
  const controllers = [];
  window.fakeSpotify = { log, controllers };
  const embed = (uri) => `https://open.spotify.com/embed/track/${uri.split(":")[2]}`;
  const IFrameAPI = {
    createController(element, options, callback) {
      const iframe = document.createElement("iframe");
      iframe.src = embed(options.uri);
      element.replaceWith(iframe);
      const listeners = {};
      const controller = {
        loadUri(uri) {
          log.push(["loadUri", uri]);
          iframe.src = embed(uri);
        },
        play() { log.push(["play"]); },
        pause() { log.push(["pause"]); },
        addListener(name, fn) { (listeners[name] = listeners[name] || []).push(fn); },
        emit(name, data) { for (const fn of listeners[name] || []) fn({ data }); },
      };
      log.push(["createController", options.uri]);
      controllers.push(controller);
      setTimeout(() => callback(controller), 0);
    },
  };
  setTimeout(() => window.onSpotifyIframeApiReady(IFrameAPI), 0);
})();
