/**
 * JupyterLab plugin: in notebooks whose kernel speaks IPython, a code cell whose
 * first line is `%%rust` or `%%rust_llvm` (options allowed) is edited as Rust;
 * once the first line changes, the cell goes back to the notebook's language.
 *
 * The switch is the cell model's MIME type, the same knob the notebook turns
 * when its kernel language changes; cells this plugin did not switch are never
 * touched.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICellModel } from '@jupyterlab/cells';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';

import { rustCellSupport } from './language';

/** MIME type of the `%%rust` cell language (registered by this plugin). */
export const RUST_CELL_MIME = 'text/x-rustcall-rust';

/** First line of a cell compiled by rustcall_magic. */
const MAGIC_LINE = /^%%rust(_llvm)?(?:[ \t][^\n]*)?(?:\n|$)/;

/** Notebook code MIME types of IPython kernels: the only ones whose `%%` cells are ours. */
const IPYTHON_MIMES = new Set(['text/x-ipython', 'text/x-python']);

function isRustCell(source: string): boolean {
  return MAGIC_LINE.test(source);
}

/** Keeps the MIME type of one code cell in step with its first line. */
function follow(notebook: Notebook, cell: ICellModel): void {
  if (cell.type !== 'code') {
    return;
  }
  const update = (): void => {
    if (cell.isDisposed) {
      return;
    }
    const host = notebook.codeMimetype;
    if (IPYTHON_MIMES.has(host) && isRustCell(cell.sharedModel.getSource())) {
      cell.mimeType = RUST_CELL_MIME;
    } else if (cell.mimeType === RUST_CELL_MIME) {
      cell.mimeType = host;
    }
  };
  cell.contentChanged.connect(update);
  // The notebook resets every cell's MIME type when its kernel language changes
  // or when it creates a cell's widget: decide again after each such reset.
  cell.mimeTypeChanged.connect(update);
  update();
}

function followNotebook(panel: NotebookPanel): void {
  const notebook = panel.content;
  const attach = (): void => {
    const model = notebook.model;
    if (!model) {
      return;
    }
    for (const cell of model.cells) {
      follow(notebook, cell);
    }
    model.cells.changed.connect((_, change) => {
      if (change.type === 'add') {
        for (const cell of change.newValues) {
          follow(notebook, cell);
        }
      }
    });
  };
  notebook.modelChanged.connect(attach);
  attach();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'rustcall-magic-lab:rust-cells',
  description: 'Highlight and edit %%rust / %%rust_llvm cells of IPython notebooks as Rust.',
  autoStart: true,
  requires: [INotebookTracker, IEditorLanguageRegistry],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker, languages: IEditorLanguageRegistry): void => {
    languages.addLanguage({
      name: 'rustcall-rust',
      displayName: 'Rust (%%rust cell)',
      mime: RUST_CELL_MIME,
      load: async () => {
        const [ipython, rust] = await Promise.all([
          languages.getLanguage('text/x-ipython'),
          languages.getLanguage('text/x-rustsrc')
        ]);
        if (!ipython?.support || !rust?.support) {
          throw new Error('rustcall-magic-lab: the IPython or Rust editor language is missing');
        }
        return rustCellSupport(ipython.support, rust.support);
      }
    });
    tracker.widgetAdded.connect((_, panel) => followNotebook(panel));
    tracker.forEach(followNotebook);
  }
};

export default plugin;
