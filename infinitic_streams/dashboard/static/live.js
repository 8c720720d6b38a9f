// Live regions: an element with data-live="URL" is replaced by what URL answers, every
// data-every ms (2 s by default), one request at a time, not while the tab is hidden.
// Opened <details data-key> stay open. Forms with data-confirm ask before they submit.
(function () {
  "use strict";

  function openKeys(region) {
    var keys = {};
    region.querySelectorAll("details[data-key]").forEach(function (d) {
      keys[d.getAttribute("data-key")] = d.open;
    });
    return keys;
  }

  function keepOpen(region, keys) {
    region.querySelectorAll("details[data-key]").forEach(function (d) {
      var key = d.getAttribute("data-key");
      if (Object.prototype.hasOwnProperty.call(keys, key)) {
        d.open = keys[key];
      }
    });
  }

  function confirmForms(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      if (form.dataset.confirmReady) {
        return;
      }
      form.dataset.confirmReady = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          event.preventDefault();
        }
      });
    });
  }

  function live(region) {
    var url = region.getAttribute("data-live");
    var every = parseInt(region.getAttribute("data-every") || "2000", 10);
    var last = region.innerHTML;

    function tick() {
      if (document.hidden) {
        window.setTimeout(tick, every);
        return;
      }
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          region.classList.remove("stale");
          if (html === last) {
            return;
          }
          var keys = openKeys(region);
          region.innerHTML = html;
          last = html;
          keepOpen(region, keys);
          confirmForms(region);
        })
        .catch(function () {
          region.classList.add("stale");
        })
        .then(function () {
          window.setTimeout(tick, every);
        });
    }

    window.setTimeout(tick, every);
  }

  confirmForms(document);
  document.querySelectorAll("[data-live]").forEach(live);
})();
