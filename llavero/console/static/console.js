/* Llavero console behaviour. Loaded with `defer`; the Content-Security-Policy forbids inline
   scripts and handlers, so everything is wired here from data-* attributes:
     data-dialog-open="ID"   opens <dialog id=ID> as a modal; focus returns to the opener on close
     data-dialog-close       closes the enclosing dialog
     data-autoshow           a dialog rendered open by the server becomes modal on load
     data-forget-on-close    the dialog leaves the page once closed (a new key is shown once)
     data-copy-target="ID"   copies the value of #ID (data-copied-text / data-manual-copy-text),
                             reporting in [data-copy-status=ID]
     data-confirm="ID"       on a form: ask in <dialog id=ID> first ([data-confirm-name-slot]
                             receives data-confirm-name, [data-confirm-accept] submits)
     data-new-project-field="ID"  on a select: #ID is shown only when the empty option is chosen
     data-select-on-focus    selects the whole value of a read-only field on focus */
(function () {
  "use strict";

  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), " +
    "select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

  function focusables(dialog) {
    return Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (el) {
      return !el.closest("[hidden]") && el.getClientRects().length > 0;
    });
  }

  function openDialog(dialog, opener) {
    if (dialog.open) {
      dialog.removeAttribute("open"); /* shown by the server without JS: reopen as a modal */
    }
    dialog.llaveroOpener = opener || document.activeElement;
    if (typeof dialog.showModal === "function") {
      dialog.showModal();
    } else {
      dialog.setAttribute("open", "");
    }
    var first = dialog.querySelector("[autofocus]") || focusables(dialog)[0];
    if (first) {
      first.focus();
    }
  }

  function closeDialog(dialog) {
    if (typeof dialog.close === "function") {
      dialog.close();
    } else {
      dialog.removeAttribute("open");
      restoreFocus(dialog);
    }
  }

  function restoreFocus(dialog) {
    if (dialog.open) {
      return;
    }
    var opener = dialog.llaveroOpener;
    dialog.llaveroOpener = null;
    if (opener && typeof opener.focus === "function" && document.contains(opener)) {
      opener.focus();
    }
  }

  /* Keeps Tab and Shift+Tab inside the dialog: without it focus can leave for the browser's
     own controls and come back to the inert page behind the modal. */
  function trapFocus(event) {
    var dialog = event.currentTarget;
    if (event.key === "Escape" && typeof dialog.showModal !== "function") {
      closeDialog(dialog);
      return;
    }
    if (event.key !== "Tab") {
      return;
    }
    var items = focusables(dialog);
    if (items.length === 0) {
      event.preventDefault();
      return;
    }
    var first = items[0];
    var last = items[items.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  function setUpDialogs() {
    document.querySelectorAll("dialog").forEach(function (dialog) {
      dialog.addEventListener("keydown", trapFocus);
      dialog.addEventListener("close", function () {
        restoreFocus(dialog);
        if (dialog.hasAttribute("data-forget-on-close")) {
          dialog.remove();
        }
      });
    });
    document.querySelectorAll("[data-dialog-open]").forEach(function (button) {
      button.addEventListener("click", function () {
        var dialog = document.getElementById(button.getAttribute("data-dialog-open"));
        if (dialog) {
          openDialog(dialog, button);
        }
      });
    });
    document.querySelectorAll("[data-dialog-close]").forEach(function (button) {
      button.addEventListener("click", function () {
        var dialog = button.closest("dialog");
        if (dialog) {
          closeDialog(dialog);
        }
      });
    });
    document.querySelectorAll("dialog[data-autoshow]").forEach(function (dialog) {
      openDialog(dialog, document.getElementById("main"));
    });
  }

  function report(targetId, text) {
    var status = document.querySelector("[data-copy-status='" + targetId + "']");
    if (status) {
      status.textContent = text;
    }
  }

  /* Where navigator.clipboard is missing (plain HTTP, old browsers) the key is selected so the
     user can copy it by hand; execCommand still works in some of those browsers. */
  function copyBySelection(field, button) {
    field.focus();
    field.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    report(field.id, copied ? button.getAttribute("data-copied-text")
                            : button.getAttribute("data-manual-copy-text"));
  }

  function setUpCopy() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.addEventListener("click", function () {
        var field = document.getElementById(button.getAttribute("data-copy-target"));
        if (!field) {
          return;
        }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(function () {
            report(field.id, button.getAttribute("data-copied-text"));
          }, function () {
            copyBySelection(field, button);
          });
        } else {
          copyBySelection(field, button);
        }
      });
    });
    document.querySelectorAll("[data-select-on-focus]").forEach(function (field) {
      field.addEventListener("focus", function () { field.select(); });
    });
  }

  function setUpConfirmations() {
    var pending = null;
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        var dialog = document.getElementById(form.getAttribute("data-confirm"));
        if (!dialog) {
          return;
        }
        event.preventDefault();
        pending = form;
        var slot = dialog.querySelector("[data-confirm-name-slot]");
        if (slot) {
          slot.textContent = form.getAttribute("data-confirm-name") || "";
        }
        openDialog(dialog, form.querySelector("button[type=submit]"));
      });
    });
    document.querySelectorAll("[data-confirm-accept]").forEach(function (button) {
      button.addEventListener("click", function () {
        var form = pending;
        pending = null;
        closeDialog(button.closest("dialog"));
        if (form) {
          form.submit();
        }
      });
    });
  }

  function setUpNewProjectToggles() {
    document.querySelectorAll("select[data-new-project-field]").forEach(function (select) {
      var field = document.getElementById(select.getAttribute("data-new-project-field"));
      if (!field) {
        return;
      }
      var input = field.querySelector("input");
      function sync() {
        var wantsNew = select.value === "";
        field.hidden = !wantsNew;
        if (input) {
          input.required = wantsNew;
        }
      }
      select.addEventListener("change", sync);
      sync();
    });
  }

  function start() {
    setUpDialogs();
    setUpCopy();
    setUpConfirmations();
    setUpNewProjectToggles();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
