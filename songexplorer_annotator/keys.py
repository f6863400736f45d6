"""A hidden Panel component that forwards key presses to Python and remembers the annotator's name
in the browser (``localStorage``), so the name is asked once per browser, not once per visit."""

from __future__ import annotations

import json

import param
import panel as pn

#: Key names the browser sends (``KeyboardEvent.key``, prefixed ``Ctrl+`` / ``Shift+``) whose
#: default action (scrolling, the browser's own save...) is prevented because the app uses them.
HANDLED_KEYS = (
    "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Shift+ArrowLeft", "Shift+ArrowRight",
    "Home", "End", " ", "Ctrl+z", "Ctrl+Z", "Ctrl+y", "Ctrl+s",
)

_ESM = """
const HANDLED = new Set(%s);
const STORAGE_KEY = 'songexplorer-annotator';

export function render({ model, el }) {
  el.style.display = 'none';
  const onKey = (event) => {
    const target = event.composedPath ? event.composedPath()[0] : event.target;
    const tag = target && target.tagName ? target.tagName.toUpperCase() : '';
    if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || (target && target.isContentEditable)) {
      return;  // typing a label or a name is not a shortcut
    }
    if (['Control', 'Shift', 'Alt', 'Meta'].includes(event.key)) { return; }
    let name = event.key;
    if (event.shiftKey && name.length > 1) { name = 'Shift+' + name; }
    if (event.ctrlKey || event.metaKey) { name = 'Ctrl+' + name; }
    if (HANDLED.has(name)) { event.preventDefault(); }
    model.send_msg({ key: name });
  };
  document.addEventListener('keydown', onKey);
  model.on('remove', () => document.removeEventListener('keydown', onKey));
  let stored = '';
  try { stored = window.localStorage.getItem(STORAGE_KEY) || ''; } catch (e) { stored = ''; }
  model.send_msg({ stored_name: stored });
  model.on('annotator', () => {
    try {
      if (model.annotator) { window.localStorage.setItem(STORAGE_KEY, model.annotator); }
    } catch (e) { /* private mode: the name is asked again next time */ }
  });
}
"""


class KeyListener(pn.custom.JSComponent):
    """Sends ``{"key": name}`` for every key press outside text boxes, and once
    ``{"stored_name": name}`` with the name this browser remembered ("" if none). Setting
    :attr:`annotator` stores a name in the browser."""

    annotator = param.String(default="", doc="The annotator's name, remembered by the browser.")

    _esm = _ESM % (json.dumps(list(HANDLED_KEYS)),)

    def __init__(self, *, on_key=None, on_stored_name=None, **params):
        super().__init__(**params)
        self._on_key = on_key
        self._on_stored_name = on_stored_name

    def _handle_msg(self, msg) -> None:
        if not isinstance(msg, dict):
            return
        if "key" in msg and self._on_key is not None:
            self._on_key(str(msg["key"]))
        if "stored_name" in msg and self._on_stored_name is not None:
            self._on_stored_name(str(msg["stored_name"] or ""))
