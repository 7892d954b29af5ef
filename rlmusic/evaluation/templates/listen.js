// rlmusic listening page: record a blind A/B preference per pair, keep the answers in this
// browser (localStorage, so a reload keeps them), and download them in the critics'
// preference format: [{pair_id, sample_a, sample_b, preferred: "a" | "b" | "tie"}].
(function () {
  "use strict";
  const storageKey = "rlmusic-listen:" + document.body.dataset.study;
  const pairs = Array.from(document.querySelectorAll(".pair"));

  function load() {
    try {
      const saved = JSON.parse(window.localStorage.getItem(storageKey) || "{}");
      return saved && typeof saved === "object" ? saved : {};
    } catch (error) {
      return {}; // unreadable storage: start afresh rather than break the page
    }
  }

  let answers = load();

  function save() {
    window.localStorage.setItem(storageKey, JSON.stringify(answers));
  }

  function records() {
    return pairs
      .filter((pair) => ["a", "b", "tie"].includes(answers[pair.dataset.pairId]))
      .map((pair) => ({
        pair_id: pair.dataset.pairId,
        sample_a: pair.dataset.sampleA,
        sample_b: pair.dataset.sampleB,
        preferred: answers[pair.dataset.pairId],
      }));
  }

  function render() {
    for (const pair of pairs) {
      const verdict = answers[pair.dataset.pairId];
      pair.classList.toggle("answered", Boolean(verdict));
      for (const button of pair.querySelectorAll("button[data-verdict]")) {
        const chosen = button.dataset.verdict === verdict;
        button.classList.toggle("chosen", chosen);
        button.setAttribute("aria-pressed", String(chosen));
      }
    }
    const done = records().length;
    document.getElementById("progress").textContent =
      done + " of " + pairs.length + " pairs answered";
    document.getElementById("download").disabled = done === 0;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-verdict]");
    if (!button) return;
    answers[button.closest(".pair").dataset.pairId] = button.dataset.verdict;
    save();
    render();
  });

  document.getElementById("download").addEventListener("click", () => {
    const text = JSON.stringify(records(), null, 2) + "\n";
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    link.download = "preferences.json";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  });

  document.getElementById("clear").addEventListener("click", () => {
    if (!window.confirm("Forget every answer on this page?")) return;
    answers = {};
    save();
    render();
  });

  render();
})();
