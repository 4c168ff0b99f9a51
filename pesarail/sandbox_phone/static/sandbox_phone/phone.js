/* Sandbox phone: move focus to the answer's confirmation so keyboard and screen-reader
   users hear what happened. No inline script anywhere (strict CSP). */
(function () {
  "use strict";
  document.addEventListener("htmx:afterSwap", function () {
    var target = document.querySelector("[data-focus]");
    if (target) {
      target.removeAttribute("data-focus");
      target.focus();
    }
  });
})();
