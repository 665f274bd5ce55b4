// The portal's small behaviours; htmx does the rest.
(function () {
  "use strict";
  var body = document.body;

  // Automatic logoff: the server ends a session after idleSeconds without a request from the person;
  // this takes the page to the sign-in screen at the same moment, so PHI does not stay on an
  // unattended screen. Like the server, it counts page loads and htmx requests, not background polls.
  var idleSeconds = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  if (idleSeconds > 0) {
    var timer = null;
    var restart = function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        window.location.assign(body.getAttribute("data-login-url") + "?next=" + encodeURIComponent(window.location.pathname));
      }, (idleSeconds + 2) * 1000);
    };
    document.addEventListener("htmx:afterRequest", function (event) {
      var poll = event.detail && event.detail.requestConfig && event.detail.requestConfig.headers["X-Background-Refresh"];
      if (!poll) { restart(); }
    });
    restart();
  }
})();
