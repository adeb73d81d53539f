// Progressive enhancement only: every page works without this file.
// - Copy buttons: a button with data-copy="ID" copies the text of element ID.
// - Forms with data-confirm="question" ask before they are sent.
"use strict";

(function () {
  var status = document.getElementById("live-status");

  function announce(message) {
    if (status) {
      status.textContent = "";
      window.setTimeout(function () { status.textContent = message; }, 50);
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    button.hidden = false;
    var label = button.firstChild.nodeValue;
    button.addEventListener("click", function () {
      copy(source.textContent.trim()).then(function () {
        button.firstChild.nodeValue = "Copied";
        button.classList.add("copied");
        announce("Copied to the clipboard.");
        window.setTimeout(function () {
          button.firstChild.nodeValue = label;
          button.classList.remove("copied");
        }, 2000);
      }, function () {
        announce("Could not copy; select the text and copy it by hand.");
      });
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
})();
