// Strings from the peer, shown so that they cannot lie to the eye (issue 13, item 4): the same
// rules as hotline/protocol/textsafety.py, which the transcripts and the CLI use, and which
// tests/test_textsafety.py checks this module against, code point by code point.
//
// `pieces` cuts a string into [kind, text] pairs: "text" as it is; "mark", an invisible character
// (a control but tab and newline, a format character such as a bidi control or a zero-width
// one, private use, unassigned, a line or paragraph separator, another default-ignorable code
// point, the blank braille pattern) shown by its name instead, "‹U+202E RLO›"; "mixed", a word
// whose letters come from two or more of SCRIPTS; "note", after it, "‹mixed Latin+Cyrillic›".
// `peer` builds a <bdi> of them: isolated, so that it cannot reorder the page around it.

const SCRIPTS = [
  ["Latin", /\p{Script=Latin}/u], ["Greek", /\p{Script=Greek}/u], ["Cyrillic", /\p{Script=Cyrillic}/u],
  ["Armenian", /\p{Script=Armenian}/u], ["Georgian", /\p{Script=Georgian}/u],
  ["Cherokee", /\p{Script=Cherokee}/u], ["Coptic", /\p{Script=Coptic}/u],
  ["Hebrew", /\p{Script=Hebrew}/u], ["Arabic", /\p{Script=Arabic}/u],
];
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u2800\u3164\uFE00-\uFE0F\uFFA0\u{E0100}-\u{E01EF}]/u;
const WORD = /[\p{L}\p{M}\p{N}]/u;
const LETTER = /\p{L}/u;
const C0 = ("NUL SOH STX ETX EOT ENQ ACK BEL BS HT LF VT FF CR SO SI "
  + "DLE DC1 DC2 DC3 DC4 NAK SYN ETB CAN EM SUB ESC FS GS RS US").split(" ");
const NAMES = new Map([
  [0x7F, "DEL"], [0xAD, "SHY"], [0x34F, "CGJ"], [0x61C, "ALM"], [0x180E, "MVS"], [0x200B, "ZWSP"],
  [0x200C, "ZWNJ"], [0x200D, "ZWJ"], [0x200E, "LRM"], [0x200F, "RLM"], [0x2028, "LSEP"], [0x2029, "PSEP"],
  [0x202A, "LRE"], [0x202B, "RLE"], [0x202C, "PDF"], [0x202D, "LRO"], [0x202E, "RLO"], [0x2060, "WJ"],
  [0x2066, "LRI"], [0x2067, "RLI"], [0x2068, "FSI"], [0x2069, "PDI"], [0xFEFF, "BOM"],
  ...Array.from({ length: 16 }, (_, n) => [0xFE00 + n, `VS${n + 1}`]),
  ...C0.map((name, n) => [n, name]),
]);

const known = new Map();

// "invisible", "word" or "word:<script>" (a letter of one of SCRIPTS), or null.
export function classify(char) {
  let kind = known.get(char);
  if (kind !== undefined) return kind;
  kind = null;
  if (char !== "\t" && char !== "\n" && INVISIBLE.test(char)) kind = "invisible";
  else if (WORD.test(char)) {
    const script = LETTER.test(char) ? SCRIPTS.find(([, re]) => re.test(char)) : undefined;
    kind = script ? `word:${script[0]}` : "word";
  }
  if (known.size < 4096) known.set(char, kind);
  return kind;
}

function mark(code) {
  const name = NAMES.get(code);
  return `‹U+${code.toString(16).toUpperCase().padStart(4, "0")}${name ? ` ${name}` : ""}›`;
}

export function pieces(text) {
  const out = [];
  let plain = "", word = "";
  const scripts = new Set();
  const endWord = () => {
    if (scripts.size > 1) {
      if (plain) { out.push(["text", plain]); plain = ""; }
      const names = SCRIPTS.map(([name]) => name).filter((name) => scripts.has(name)).join("+");
      out.push(["mixed", word], ["note", `‹mixed ${names}›`]);
    } else plain += word;
    word = "";
    scripts.clear();
  };
  for (const char of String(text ?? "")) {
    const kind = classify(char);
    if (kind !== null && kind.startsWith("word")) {
      word += char;
      if (kind !== "word") scripts.add(kind.slice(5));
      continue;
    }
    endWord();
    if (kind === "invisible") {
      if (plain) { out.push(["text", plain]); plain = ""; }
      out.push(["mark", mark(char.codePointAt(0))]);
    } else plain += char;
  }
  endWord();
  if (plain) out.push(["text", plain]);
  return out;
}

// The plain form, for an attribute; isolated between FSI and PDI, for a phrase of the page's own.
export const shown = (text) => pieces(text).map(([, s]) => s).join("");
export const isolated = (text) => `\u2068${shown(text)}\u2069`;

// A string from outside as an isolated element: its marks and mixed words styled.
export function peer(text) {
  const box = document.createElement("bdi");
  box.className = "peer";
  for (const [kind, s] of pieces(text)) {
    if (kind === "text") { box.append(s); continue; }
    const e = document.createElement(kind === "mixed" ? "mark" : "span");
    e.className = kind;
    e.textContent = s;
    box.append(e);
  }
  return box;
}
