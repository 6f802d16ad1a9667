// Study report: the Print button opens the browser's print dialog (the print stylesheet does the rest).
(() => {
  "use strict";
  const button = document.querySelector("[data-print]");
  if (button) button.addEventListener("click", () => window.print());
})();
