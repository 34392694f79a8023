// The survey page's "Copy link" button (shown only when scripts run; without them
// the link stays in its read-only box to select and copy by hand).
(function () {
  "use strict";
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy-target"));
    var status = button.parentNode.querySelector("[data-copy-status]");
    if (!input) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      input.select();
      var done = function () { if (status) status.textContent = "Link copied."; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () {
          if (status) status.textContent = "Select the link and copy it.";
        });
      } else {
        try { document.execCommand("copy"); done(); } catch (e) { /* selected for copying by hand */ }
      }
    });
  });
})();
