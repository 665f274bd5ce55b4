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

  // The order wizard re-runs its checks when a field they read changes: a container with
  // data-recheck-on="name other-name prefix-*" gets a "recheck" event (its hx-trigger) when a field
  // it holds with one of those names (a trailing * matches a prefix) changes. htmx's own filtered
  // triggers (change[...]) would do this by evaluating JavaScript, which the content security
  // policy forbids. One listener on the document serves the steps htmx swaps in later too.
  var recheckWanted = function (container, name) {
    return (container.getAttribute("data-recheck-on") || "").split(/\s+/).some(function (pattern) {
      if (!pattern) { return false; }
      var prefix = pattern.charAt(pattern.length - 1) === "*";
      return prefix ? name.indexOf(pattern.slice(0, -1)) === 0 : name === pattern;
    });
  };
  document.addEventListener("change", function (event) {
    var field = event.target;
    var container = field && field.closest ? field.closest("[data-recheck-on]") : null;
    if (container && field.name && recheckWanted(container, field.name)) {
      container.dispatchEvent(new CustomEvent("recheck"));
    }
  });

  // Signature pad: draw with a finger, pen or mouse (pointer events), or type a name and have it
  // written in the box. On submit the drawing goes to the hidden "signature" field as a PNG data URL.
  var pads = document.querySelectorAll("[data-signature-pad]");
  Array.prototype.forEach.call(pads, function (pad) {
    var canvas = pad.querySelector("canvas");
    var form = pad.closest("form");
    var field = form.querySelector("input[name=signature]");
    var context = canvas.getContext("2d");
    var drawn = false;
    var last = null;
    var scale = function () {
      var ratio = window.devicePixelRatio || 1;
      var box = canvas.getBoundingClientRect();
      canvas.width = Math.round(box.width * ratio);
      canvas.height = Math.round(box.height * ratio);
      context.setTransform(ratio, 0, 0, ratio, 0, 0);
      context.lineWidth = 2.5;
      context.lineCap = "round";
      context.lineJoin = "round";
      context.strokeStyle = "#1b2430";
      drawn = false;
    };
    var point = function (event) {
      var box = canvas.getBoundingClientRect();
      return { x: event.clientX - box.left, y: event.clientY - box.top };
    };
    canvas.addEventListener("pointerdown", function (event) {
      canvas.setPointerCapture(event.pointerId);
      last = point(event);
      context.beginPath();
      context.arc(last.x, last.y, 1, 0, 2 * Math.PI);
      context.stroke();
      drawn = true;
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!last) { return; }
      var next = point(event);
      context.beginPath();
      context.moveTo(last.x, last.y);
      context.lineTo(next.x, next.y);
      context.stroke();
      last = next;
    });
    var stop = function () { last = null; };
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    pad.querySelector("[data-clear]").addEventListener("click", function () {
      context.clearRect(0, 0, canvas.width, canvas.height);
      drawn = false;
      field.value = "";
    });
    pad.querySelector("[data-sign-typed]").addEventListener("click", function () {
      var name = pad.querySelector("#typed-name").value.trim();
      if (!name) { return; }
      var box = canvas.getBoundingClientRect();
      context.clearRect(0, 0, canvas.width, canvas.height);
      context.font = "italic 2.25rem Georgia, 'Times New Roman', serif";
      context.fillStyle = "#1b2430";
      context.fillText(name, 16, box.height * 0.62, box.width - 32);
      drawn = true;
    });
    form.addEventListener("submit", function () {
      field.value = drawn ? canvas.toDataURL("image/png") : "";
    });
    scale();
  });
})();
