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
