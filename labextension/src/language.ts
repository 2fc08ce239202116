/**
 * The editor language of a `%%rust` / `%%rust_llvm` cell: the first line (the
 * magic and its options) is parsed by the notebook's own Python parser, so it
 * looks as it does in any IPython cell; the body is parsed by the Rust parser
 * JupyterLab already ships. Both are nested in one syntax tree, so Rust's
 * highlighting, bracket matching, indentation and `//` comments apply in the
 * body.
 */

import {
  Language,
  LanguageSupport,
  defineLanguageFacet,
  languageDataProp
} from '@codemirror/language';
import {
  Input,
  NodeType,
  ParseWrapper,
  Parser,
  PartialParse,
  Tree,
  TreeFragment,
  parseMixed
} from '@lezer/common';

/** Language data outside the nested trees (an empty cell, the line break after the magic). */
const cellData = defineLanguageFacet({ commentTokens: { line: '//' } });

const cellType = NodeType.define({
  id: 0,
  name: 'RustcallCell',
  top: true,
  props: [[languageDataProp, cellData]]
});
const magicType = NodeType.define({ id: 1, name: 'RustcallMagicLine' });
const bodyType = NodeType.define({ id: 2, name: 'RustcallBody' });

/** End of the first line of `input` within [from, to). */
function firstLineEnd(input: Input, from: number, to: number): number {
  let pos = from;
  while (pos < to) {
    const chunk = input.chunk(pos);
    if (!chunk.length) {
      break;
    }
    const newline = chunk.indexOf('\n');
    if (newline >= 0) {
      return Math.min(to, pos + newline);
    }
    pos += chunk.length;
  }
  return to;
}

/** Splits a cell into the magic line and the body; the nested parsers do the rest. */
class CellParse implements PartialParse {
  parsedPos: number;
  stoppedAt: number | null = null;

  constructor(
    private readonly input: Input,
    private readonly ranges: readonly { from: number; to: number }[]
  ) {
    this.parsedPos = ranges[0].from;
  }

  advance(): Tree {
    const from = this.ranges[0].from;
    const to = this.ranges[this.ranges.length - 1].to;
    const lineEnd = firstLineEnd(this.input, from, to);
    const children: Tree[] = [new Tree(magicType, [], [], lineEnd - from)];
    const positions = [0];
    if (lineEnd + 1 < to) {
      children.push(new Tree(bodyType, [], [], to - lineEnd - 1));
      positions.push(lineEnd + 1 - from);
    }
    this.parsedPos = to;
    return new Tree(cellType, children, positions, to - from);
  }

  stopAt(pos: number): void {
    this.stoppedAt = pos;
  }
}

class CellParser extends Parser {
  private readonly wrap: ParseWrapper;

  constructor(magicParser: Parser, rustParser: Parser) {
    super();
    // Both parts are mounted as overlays covering their whole node: the
    // @lezer/common bundled with JupyterLab 4.6 enters a plain (non-overlay)
    // mounted sibling lying before the position asked about, so with plain mounts
    // the language data in the body came from the magic line's tree (Python's `#`
    // comments). Overlay mounts are looked up by range.
    this.wrap = parseMixed(node => {
      const overlay = [{ from: node.from, to: node.to }];
      if (node.type === bodyType) {
        return { parser: rustParser, overlay };
      }
      if (node.type === magicType) {
        return { parser: magicParser, overlay };
      }
      return null;
    });
  }

  createParse(
    input: Input,
    fragments: readonly TreeFragment[],
    ranges: readonly { from: number; to: number }[]
  ): PartialParse {
    return this.wrap(new CellParse(input, ranges), input, fragments, ranges);
  }
}

/**
 * Language support for a `%%rust` cell.
 *
 * @param ipython - the notebook's IPython language support (parses the magic line)
 * @param rust - JupyterLab's Rust language support (parses the body; its extensions are kept)
 */
export function rustCellSupport(ipython: LanguageSupport, rust: LanguageSupport): LanguageSupport {
  const language = new Language(
    cellData,
    new CellParser(ipython.language.parser, rust.language.parser),
    [],
    'rustcall-rust'
  );
  return new LanguageSupport(language, rust.support);
}
