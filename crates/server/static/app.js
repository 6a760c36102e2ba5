// Progressive enhancement only: every page works without JavaScript.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
document.addEventListener("submit", (event) => {
  const form = event.target;
  const message = form.dataset.confirm;
  if (!message) return;
  if (!window.confirm(message)) event.preventDefault();
  // Confirmed here: the server skips its own confirmation page (shown without JavaScript).
  else if (form.elements.confirmed) form.elements.confirmed.value = "yes";
});
// Live preview of the prompt card while its copy is edited.
document.addEventListener("input", (event) => {
  const target = event.target.dataset && event.target.dataset.preview;
  if (!target) return;
  const preview = document.querySelector(target);
  if (preview) preview.textContent = event.target.value || preview.dataset.default;
});
// A field filled in selects its option's radio (the field names the radio in data-selects):
// picking an audience left the trigger on "app event". On submit, a chosen option whose field
// is filled is sent alone, so another field left filled does not make the choice ambiguous.
const selectOwnRadio = (event) => {
  const radio = event.target.dataset && event.target.dataset.selects;
  if (!radio || !event.target.value.trim()) return;
  const input = document.querySelector(radio);
  if (input) input.checked = true;
};
document.addEventListener("input", selectOwnRadio);
document.addEventListener("change", selectOwnRadio);
document.addEventListener("submit", (event) => {
  const fields = [...event.target.querySelectorAll("[data-selects]")];
  const chosen = fields.find((field) => {
    const radio = document.querySelector(field.dataset.selects);
    return field.value.trim() && radio && radio.checked;
  });
  if (!chosen) return;
  const others = fields.filter((field) => field !== chosen);
  others.forEach((field) => { field.disabled = true; });
  // The form's data is read as this event ends; back on the page, the fields work again.
  setTimeout(() => others.forEach((field) => { field.disabled = false; }));
});
// The navigation marks the section this page belongs to (the longest link the path starts
// with; a rule's page belongs to Studies).
(() => {
  const here = location.pathname.replace(/\/rules\/[^/]+$/, "/studies");
  const links = [...document.querySelectorAll("nav.sections a")];
  const within = (link) => {
    const path = new URL(link.href).pathname;
    return here === path || here.startsWith(path + "/");
  };
  const current = links.filter(within).sort((a, b) => b.href.length - a.href.length)[0];
  if (current) current.setAttribute("aria-current", "page");
})();
