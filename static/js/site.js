// Site-wide behaviour, loaded by base.html. Pages carry no inline script or on…=
// attributes (the Content-Security-Policy forbids them); behaviour is declared with
// data- attributes and handled here, by delegation, so htmx-swapped content works too.
(function () {
  "use strict";

  // <select data-autosubmit>: submit the form on change (the organisation switcher;
  // a <noscript> button covers browsers without JavaScript).
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit") && el.form) {
      el.form.submit();
    }
  });

  // <form data-confirm="Question?">: ask before a destructive action.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var question = form instanceof HTMLFormElement && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );
})();
