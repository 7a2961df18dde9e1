"""An account box with suggestions that tells typing apart from a committed choice.

ipywidgets' ``Combobox`` syncs one ``value`` for both, so typing ``137`` key by
key looks like choosing 1, then 13, then 137. :class:`AccountBox` (an
anywidget: its JavaScript ships inside the package, no CDN) syncs ``text`` at
every keystroke, for suggestions, and ``value`` only when the person commits:
Enter, a pick from the suggestions, or leaving the box.
"""

from __future__ import annotations

from typing import Final

import anywidget
import traitlets

__all__ = ["AccountBox"]

_ESM: Final = r"""
function render({ model, el }) {
  const id = "eventkit-ids-" + Math.random().toString(36).slice(2);
  const label = document.createElement("label");
  label.textContent = model.get("description");
  label.className = "eventkit-account-label";
  const input = document.createElement("input");
  input.type = "text";
  input.setAttribute("list", id);
  input.placeholder = model.get("placeholder");
  input.value = model.get("value");
  input.className = "eventkit-account-input";
  input.autocomplete = "off";
  const list = document.createElement("datalist");
  list.id = id;
  const fill = () => {
    list.replaceChildren(...model.get("options").map((o) => {
      const opt = document.createElement("option");
      opt.value = o;
      return opt;
    }));
  };
  const commit = () => {
    model.set("text", input.value);
    model.set("value", input.value.trim());
    model.set("commits", model.get("commits") + 1);
    model.save_changes();
  };
  input.addEventListener("input", (e) => {
    // a pick from the suggestions replaces the text at once: that is a choice, not typing
    if (!e.inputType || e.inputType === "insertReplacementText") { commit(); return; }
    model.set("text", input.value);
    model.save_changes();
  });
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") commit(); });
  input.addEventListener("change", () => {
    if (input.value.trim() !== model.get("value")) commit();
  });
  model.on("change:options", fill);
  model.on("change:value", () => {
    if (input.value.trim() !== model.get("value")) input.value = model.get("value");
  });
  fill();
  el.classList.add("eventkit-account");
  el.append(label, input, list);
}
export default { render };
"""

_CSS: Final = """
.eventkit-account { display: flex; align-items: center; gap: 8px; margin: 2px 0; }
.eventkit-account-label { width: 80px; text-align: right; font-size: 13px; }
.eventkit-account-input { width: 180px; height: 26px; font-size: 13px; padding: 0 6px; }
"""


class AccountBox(anywidget.AnyWidget):
    """A text box with suggestions: ``text`` while typing, ``value`` once committed.

    Set ``options`` (the suggestions) from ``text``; react to ``value``.

    Examples
    --------
    >>> box = AccountBox(value="3", options=["3", "30"])
    >>> box.text = "13"  # typing: the committed value stays
    >>> box.value
    '3'
    >>> box.close()

    """

    _esm = _ESM
    _css = _CSS
    value = traitlets.Unicode("").tag(sync=True)
    text = traitlets.Unicode("").tag(sync=True)
    options = traitlets.List(traitlets.Unicode()).tag(sync=True)
    description = traitlets.Unicode("account").tag(sync=True)
    placeholder = traitlets.Unicode("type an account id").tag(sync=True)
    commits = traitlets.Int(0).tag(sync=True)
