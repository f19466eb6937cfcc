// NeuroGate portal: small progressive enhancements (every page works without them).
(function () {
  "use strict";

  // Move focus to the error summary so keyboard and screen-reader users hear it first.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }

  // Show the idle-timeout notice two minutes (or a fifth of the timeout) before it bites.
  var notice = document.getElementById("idle-notice");
  if (notice) {
    var idle = parseInt(notice.getAttribute("data-idle-seconds"), 10);
    if (idle > 0) {
      var lead = Math.min(120, Math.floor(idle / 5));
      window.setTimeout(function () {
        notice.hidden = false;
      }, Math.max(0, idle - lead) * 1000);
    }
  }
})();
