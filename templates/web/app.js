// paperboy's one script. The pages work without it; it adds two conveniences:
// - the time zone select starts at the browser's zone (only on the sign-up form, where the
//   server could not know it);
// - the interests box updates the preview as you type, from GET /preview (same origin, so the
//   Content-Security-Policy allows it). The answer is HTML the server escaped. On the manage
//   page the form's "most papers" field goes along, so the preview holds as many papers as
//   that subscriber's digest.
(function () {
  "use strict";
  // After a refused form, move focus to the list of problems so it is read out first.
  var problems = document.getElementById("form-errors");
  if (problems) { problems.focus(); }
  var tz = document.getElementById("timezone");
  if (tz && tz.dataset.auto === "1" && window.Intl) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    for (var i = 0; i < tz.options.length; i++) {
      if (tz.options[i].value === zone) { tz.value = zone; break; }
    }
  }
  // With the live preview running, the no-JavaScript "Show preview" buttons are redundant.
  var buttons = document.querySelectorAll("button[value=preview]");
  for (var j = 0; j < buttons.length; j++) { buttons[j].hidden = true; }
  var box = document.getElementById("interests");
  var out = document.getElementById("preview");
  if (!box || !out || !window.fetch) {
    for (var k = 0; k < buttons.length; k++) { buttons[k].hidden = false; }
    return;
  }
  var size = box.form && box.form.elements.namedItem("max_papers");
  function asked() {
    var q = box.value.trim();
    return { interests: q, url: box.dataset.preview + "?interests=" + encodeURIComponent(q) +
      (size ? "&max_papers=" + encodeURIComponent(size.value.trim()) : "") };
  }
  var timer = null, last = asked().url, seq = 0;
  function refresh() {
    var now = asked(), q = now.interests;
    if (now.url === last) { return; }
    last = now.url;
    var mine = ++seq;
    if (!q) { out.innerHTML = '<p class="muted">Type your interests and the matching papers appear here.</p>'; return; }
    out.setAttribute("aria-busy", "true");
    fetch(now.url, { credentials: "omit" })
      .then(function (r) { return r.text(); })
      .then(function (html) { if (mine === seq) { out.innerHTML = html; } })
      .catch(function () { /* the Show preview button still works */ })
      .then(function () { if (mine === seq) { out.removeAttribute("aria-busy"); } });
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  }
  box.addEventListener("input", later);
  if (size) { size.addEventListener("input", later); }
})();
