// Starts Swagger UI for NeuroGate's /docs page. A file of its own (not an inline script)
// so that the page runs under the gateway's Content-Security-Policy (script-src 'self').
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No online validator badge: the page loads nothing from outside the gateway.
    validatorUrl: null,
  });
})();
