// soul gallery: filter the cards and copy commands. No framework, nothing from the network.
"use strict";

(function () {
  const search = document.getElementById("search");
  const style = document.getElementById("style");
  const shown = document.getElementById("shown");
  const nomatch = document.getElementById("nomatch");
  const cards = Array.from(document.querySelectorAll("article.card"));
  // Read once: a thousand cards are filtered on every key typed.
  const texts = cards.map((card) => card.dataset.search);
  const styles = cards.map((card) => JSON.parse(card.dataset.styles));
  const counts = cards.map((card) => [
    Number(card.dataset.tasks),
    Number(card.dataset.images),
    Number(card.dataset.units),
  ]);
  const totals = {
    tasks: document.getElementById("tasks"),
    images: document.getElementById("images"),
    spent: document.getElementById("spent"),
  };

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  // Prices come in whole ten-thousandths of a PTC, so the sum is exact: 0.3, not 0.30000000000000004.
  function ptc(units) {
    const whole = Math.floor(units / 10000);
    const fraction = String(units % 10000).padStart(4, "0").replace(/0+$/, "");
    return (fraction ? whole + "." + fraction : String(whole)) + " PTC";
  }

  // Every word typed must appear in the card's prompt, negative prompt, styles or ids.
  function applyFilters() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const wanted = style.value;
    let count = 0;
    const sums = [0, 0, 0];
    cards.forEach((card, index) => {
      const text = texts[index];
      const keep =
        words.every((word) => text.includes(word)) && (!wanted || styles[index].includes(wanted));
      // Only the cards that change are touched, so the browser lays out only them.
      if (card.hidden === keep) card.hidden = !keep;
      if (keep) {
        count += 1;
        counts[index].forEach((value, which) => {
          sums[which] += value;
        });
      }
    });
    shown.textContent = String(count);
    totals.tasks.textContent = plural(sums[0], "task");
    totals.images.textContent = plural(sums[1], "image");
    totals.spent.textContent = ptc(sums[2]);
    nomatch.hidden = count > 0 || cards.length === 0;
  }

  // The Clipboard API needs a secure context; a file: page usually is, but some
  // browsers say no, so the old way through a selected text area is the fallback.
  function copyTheOldWay(command) {
    const area = document.createElement("textarea");
    area.value = command;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    area.remove();
    return copied;
  }

  async function copy(button) {
    const command = button.dataset.command;
    let copied = false;
    try {
      await navigator.clipboard.writeText(command);
      copied = true;
    } catch (error) {
      copied = copyTheOldWay(command);
    }
    button.textContent = copied ? "Copied" : "Select it";
    window.setTimeout(() => {
      button.textContent = "Copy";
    }, 1500);
  }

  search.addEventListener("input", applyFilters);
  style.addEventListener("change", applyFilters);
  search.form.addEventListener("submit", (event) => event.preventDefault());
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (button) copy(button);
  });
  applyFilters();
})();
