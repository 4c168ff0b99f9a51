/* pesarail hosted checkout: instant phone-number checks, focus management and polling
   recovery. Loaded as a file (strict CSP: no inline script, no eval). The page works
   without it: the server validates too and a <noscript> refresh replaces polling. */
(function () {
  "use strict";

  var EXAMPLE = "Enter it like 0712 345 678.";

  /* Kenyan M-Pesa numbers: 07xx / 01xx, with or without 0, 254 or +254 in front.
     Returns "" when the number looks right, else what to fix. The server decides. */
  function phoneProblem(raw, final) {
    var value = raw.replace(/[\s\-().]/g, "");
    if (value === "") {
      return final ? "Enter your M-Pesa phone number, like 0712 345 678." : "";
    }
    if (/[^0-9+]/.test(value) || value.lastIndexOf("+") > 0) {
      return "Use digits only. " + EXAMPLE;
    }
    var national;
    if (value.indexOf("+") === 0) {
      if (value.indexOf("+254") !== 0) {
        return value.length >= 4 || final ? "Use a Kenyan number (+254). " + EXAMPLE : "";
      }
      national = value.slice(4);
    } else if (value.indexOf("254") === 0 && value.length > 9) {
      national = value.slice(3);
    } else if (value.charAt(0) === "0") {
      national = value.slice(1);
    } else {
      national = value;
    }
    if (national.length > 0 && !/^[17]/.test(national)) {
      return "Kenyan M-Pesa numbers start with 07 or 01. " + EXAMPLE;
    }
    if (national.length > 9) {
      return "This number has too many digits. " + EXAMPLE;
    }
    if (national.length < 9 && final) {
      return "This number is too short. " + EXAMPLE;
    }
    return "";
  }

  function show(input, message) {
    var error = document.getElementById(input.getAttribute("aria-describedby").split(" ").pop());
    if (message) {
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
    if (error && error.textContent !== message) {
      error.textContent = message;
    }
  }

  /* As you type: flag what is already certainly wrong (letters, a wrong prefix, too many
     digits); once a field has been flagged, re-check every keystroke so the message goes
     away as soon as the number is right. On leaving the field and on submit: check fully. */
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-phone]")) {
      return;
    }
    var final = input.getAttribute("aria-invalid") === "true" && input.dataset.touched === "1";
    show(input, phoneProblem(input.value, final));
  });

  document.addEventListener("focusout", function (event) {
    var input = event.target;
    var next = event.relatedTarget;
    /* Leaving for the Pay button: the submit check runs next. Showing the message now
       would push the button down between mouse-down and mouse-up, losing the click. */
    if (next && next.type === "submit" && next.form === input.form) {
      return;
    }
    if (input.matches && input.matches("[data-phone]") && input.value !== "") {
      input.dataset.touched = "1";
      show(input, phoneProblem(input.value, true));
    }
  });

  /* Capture phase on the document: runs before htmx's listener on the form, so an
     invalid number never leaves the browser. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("[data-pay-form]")) {
      return;
    }
    var input = form.querySelector("[data-phone]");
    if (!input) {
      return;
    }
    var problem = phoneProblem(input.value, true);
    if (problem) {
      event.preventDefault();
      event.stopImmediatePropagation();
      input.dataset.touched = "1";
      show(input, problem);
      input.focus();
    }
  }, true);

  /* After a new panel arrives, move focus to its heading (or the field to fix), so
     keyboard and screen-reader users land on what changed. Polls that only replace the
     invisible poller do not move focus. */
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || target.id !== "panel") {
      return;
    }
    var focus = target.querySelector("[data-focus]");
    if (focus) {
      focus.focus();
    }
  });

  /* A failed poll (network or server error) must not end polling: try again later. */
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.id === "poller" && !event.detail.successful && window.htmx) {
      window.htmx.trigger(elt, "retry");
    }
  });
})();
