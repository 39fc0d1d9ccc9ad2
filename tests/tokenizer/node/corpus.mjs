// corpus.mjs: the oracle corpus of tests/tokenizer/tokenizer_oracle_test.cc.
//
// Writes >= 10,000 strings as JSONL, one {"category", "text"} object a line, to the file named
// by the first argument (stdout without one). Deterministic: one seeded PRNG (xoshiro128**) and
// no other source of randomness, so every run on every machine writes the same bytes.
//
// The categories aim at the places where tokenizers differ: English prose; code with tabs,
// runs of spaces and \n / \r\n; CJK; Arabic; Hindi; emoji with ZWJ sequences, skin tones, flags
// and keycaps; combining marks (decomposed, precomposed, out of canonical order: NFC matters);
// text that looks like invalid bytes ("\xff" spelled out, U+FFFD, lone Latin-1, C1 controls);
// special tokens inside text, whole and partial; very long words and runs; contractions in
// every case; mixed scripts; whitespace of every kind; random scalar values; empty strings.
// Only valid Unicode scalar values (no lone surrogates: the C++ side reads UTF-8), and only code
// points whose properties every Unicode version in play agrees on: those assigned in Unicode
// 14.0 (unicode14.mjs says why) and the noncharacters.
import fs from "fs";
import { ASSIGNED_14 } from "./unicode14.mjs";

// xoshiro128** seeded by splitmix32: 32-bit integer arithmetic only (Math.imul, >>> 0).
function makeRng(seed) {
  let x = seed >>> 0;
  const split = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = [split(), split(), split(), split()];
  const rotl = (v, k) => ((v << k) | (v >>> (32 - k))) >>> 0;
  return () => {
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  };
}

const next = makeRng(20240617);
// An integer in [lo, hi].
const int = (lo, hi) => lo + (next() % (hi - lo + 1));
const chance = (p) => next() / 4294967296 < p;
const pick = (arr) => arr[int(0, arr.length - 1)];
// Whether code point c is assigned in Unicode 14.0 or a noncharacter (unassigned for ever).
function stable(c) {
  if ((c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) === 0xfffe) return true;
  let lo = 0, hi = ASSIGNED_14.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (c < ASSIGNED_14[2 * mid]) hi = mid - 1;
    else if (c > ASSIGNED_14[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}
// A stable code point in [lo, hi] (the range must hold one).
function cp(lo, hi) {
  for (;;) {
    const c = int(lo, hi);
    if (stable(c)) return String.fromCodePoint(c);
  }
}
const repeat = (n, f) => Array.from({ length: n }, f).join("");

const WORDS = (
  "the of and to in is was that for on it with as his he be at by had are but from or have an " +
  "they which one you were her all she there would their we him been has when who will more no " +
  "if out so said what up its about into than them can only other new some could time these two " +
  "may then do first any my now such like our over man me even most made after also did many " +
  "before must through back years where much your way well down should because each just those " +
  "people how too little state good very make world still own see men work long get here between " +
  "both life being under never day same another know while last might us great old year off come " +
  "since against go came right used take three tokenizer serving expert elastic scaling memory " +
  "throughput latency gigabyte kernel thread mutex allocator internationalization " +
  "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis Zürich naïve café " +
  "résumé coöperate façade jalapeño München São Paulo Ærøskøbing Straße İstanbul ﬁne"
).split(" ");
const NAMES = ["Alice", "Bob", "GPT-4", "Qwen3", "Mixtral", "LLaMA", "McDonald", "O'Brien",
  "iPhone", "macOS", "JSON", "HTTP/2", "C++20", "U.S.A.", "Dr.", "e.g.", "i.e.", "etc."];
const PUNCT = [".", ",", "!", "?", ";", ":", "...", " - ", " -- ", " — ", "–", "(", ")", "\"",
  "'", "“", "”", "‘", "’", "«", "»", "…", "/", "&", "%", "$", "#", "@", "*", "[", "]"];

function number() {
  switch (int(0, 9)) {
    case 0: return String(int(0, 9));
    case 1: return String(int(10, 99999));
    case 2: return `${int(0, 999)}.${int(0, 99999)}`;
    case 3: return `${int(1, 999)},${String(int(0, 999)).padStart(3, "0")},000`;
    case 4: return `${int(1900, 2099)}-${String(int(1, 12)).padStart(2, "0")}-${String(int(1, 28)).padStart(2, "0")}`;
    case 5: return `$${int(0, 9999)}.${String(int(0, 99)).padStart(2, "0")}`;
    case 6: return `${int(0, 100)}%`;
    case 7: return `${int(0, 23)}:${String(int(0, 59)).padStart(2, "0")}`;
    case 8: return `0x${int(0, 0xffffff).toString(16)}`;
    default: return `${int(1, 9)}e-${int(1, 30)}`;
  }
}

function word() {
  const r = int(0, 19);
  if (r < 14) return pick(WORDS);
  if (r < 16) return pick(NAMES);
  if (r < 18) return number();
  return pick(WORDS).toUpperCase();
}

function sentence() {
  const n = int(3, 25);
  let s = "";
  for (let i = 0; i < n; i++) {
    let w = word();
    if (i === 0) w = w.charAt(0).toUpperCase() + w.slice(1);
    s += (i ? " " : "") + w;
    if (chance(0.12)) s += pick(PUNCT);
  }
  return s + pick([".", ".", ".", "!", "?", "...", ":", ""]);
}

function english() {
  const n = int(1, 6);
  let s = "";
  for (let i = 0; i < n; i++) s += (i ? pick([" ", " ", "  ", "\n", "\n\n", " \n"]) : "") + sentence();
  if (chance(0.1)) s = " " + s;
  if (chance(0.1)) s += pick([" ", "\n", "  "]);
  return s;
}

const IDENTS = ["x", "i", "n", "buf", "size_bytes", "kMaxTokens", "fooBar", "__init__", "self",
  "std::vector<int>", "HashMap", "_private", "tokenize", "ids_", "αβγ", "变量"];

function codeLine(lang) {
  const a = pick(IDENTS), b = pick(IDENTS), n = number();
  switch (lang) {
    case "c": return pick([`int ${a} = ${n};`, `for (int i = 0; i < ${a}; ++i) {`, "}",
      `if (${a} != ${b}) return -1;`, `${a}->${b}(${n}, "str\\n");`, `// TODO: ${sentence()}`,
      `#include <${a}.h>`, `${a}[i] += ${b} * 0.5f;`, `/* ${a} */`, `case ${n}: break;`]);
    case "py": return pick([`def ${a}(${b}, *args, **kw):`, `    return ${a} ** 2`,
      `${a} = [${b} for ${b} in range(${n})]`, `# ${sentence()}`, `print(f"{${a}!r:>10}")`,
      `class ${a}(object):`, `"""${sentence()}"""`, `${a}: dict[str, int] = {}`, "pass"]);
    case "js": return pick([`const ${a} = (${b}) => ${b} + ${n};`, `let ${a} = \`${b}\${x}\`;`,
      `export default function ${a}() {`, `});`, `${a}?.${b} ?? null`, `console.log(${a});`]);
    case "json": return pick([`{"${a}": ${n},`, `  "${b}": [1, 2, 3],`, `"key": "value"}`,
      `  "nested": {"a": null, "b": true}`, `[]`]);
    case "sh": return pick([`for f in *.txt; do echo "$f"; done`, `${a}=$(ls -la | wc -l)`,
      `if [ -z "$${a}" ]; then exit 1; fi`, `cat <<'EOF' > /tmp/${a}`, `  grep -E '^[a-z]+$' ${a}`]);
    default: return pick([`<div class="${a}">`, `</div>`, `<p>${sentence()}</p>`,
      `<a href="https://example.com/${a}?q=${n}&amp;x=1">link</a>`, `<!-- ${a} -->`]);
  }
}

function code() {
  const lang = pick(["c", "py", "js", "json", "sh", "html"]);
  const nl = pick(["\n", "\n", "\r\n", "\r"]);
  const indentUnit = pick(["\t", "  ", "    ", "        ", " \t", "\t\t"]);
  const lines = int(1, 14);
  let s = "";
  for (let i = 0; i < lines; i++) {
    let line = indentUnit.repeat(int(0, 4)) + codeLine(lang);
    if (chance(0.15)) line += " ".repeat(int(1, 12)) + pick(["// x", "# y", "", "\t"]);
    if (chance(0.1)) line = line.replace(/ /g, () => " ".repeat(int(1, 6)));
    if (chance(0.1)) line += pick([" ", "  ", "\t", " \t "]);  // trailing blanks
    s += line + nl;
    if (chance(0.1)) s += pick(["", "   ", "\t"]) + nl.repeat(int(1, 3));
  }
  if (chance(0.3)) s = s.slice(0, -nl.length);
  return s;
}

function cjk() {
  const n = int(1, 60);
  let s = "";
  for (let i = 0; i < n; i++) {
    const r = int(0, 99);
    if (r < 45) s += cp(0x4e00, 0x9fff);
    else if (r < 60) s += cp(0x3041, 0x3096);
    else if (r < 70) s += cp(0x30a1, 0x30fa);
    else if (r < 82) s += cp(0xac00, 0xd7a3);
    else if (r < 88) s += pick(["、", "。", "！", "？", "「", "」", "（", "）", "・", "ー", "〜", "《", "》"]);
    else if (r < 91) s += cp(0xff01, 0xff5e);
    else if (r < 93) s += cp(0x20000, 0x2a6df);
    else if (r < 95) s += cp(0x3400, 0x4dbf);
    else if (r < 97) s += pick([" ", "\u3000", "\n"]);
    else s += word();
  }
  return s;
}

function arabic() {
  const words = int(1, 15);
  let s = "";
  for (let w = 0; w < words; w++) {
    if (w) s += pick([" ", " ", " ", "، ", ". ", "\u200f ", " \u200c"]);
    if (chance(0.08)) { s += repeat(int(1, 4), () => cp(0x0660, 0x0669)); continue; }
    if (chance(0.05)) { s += word(); continue; }
    const len = int(1, 8);
    for (let i = 0; i < len; i++) {
      s += chance(0.1) ? cp(0x067e, 0x06d3) : cp(0x0621, 0x064a);
      if (chance(0.3)) s += cp(0x064b, 0x0652);  // harakat
      if (chance(0.03)) s += "\u0640";  // tatweel
    }
  }
  return s + (chance(0.3) ? pick(["؟", ".", "!"]) : "");
}

const DEVANAGARI_WORDS = ["नमस्ते", "भारत", "हिन्दी", "क्षत्रिय", "प्रधानमंत्री", "श्री", "ज़िंदगी",
  "कृपया", "धन्यवाद", "विद्यालय", "ॐ", "१२३४"];

function hindi() {
  const words = int(1, 15);
  let s = "";
  for (let w = 0; w < words; w++) {
    if (w) s += pick([" ", " ", " ", "। ", ", ", "\n"]);
    if (chance(0.3)) { s += pick(DEVANAGARI_WORDS); continue; }
    const syl = int(1, 5);
    for (let i = 0; i < syl; i++) {
      s += cp(0x0915, 0x0939);
      if (chance(0.1)) s += "\u093c";  // nukta
      if (chance(0.2)) s += "\u094d" + cp(0x0915, 0x0939);  // conjunct
      if (chance(0.5)) s += cp(0x093e, 0x094c);  // vowel sign
      if (chance(0.1)) s += pick(["\u0902", "\u0901", "\u0903"]);
    }
  }
  return s;
}

const EMOJI = ["😀", "😂", "🥲", "❤️", "❤", "🔥", "👍", "🎉", "🤖", "🧠", "🚀", "☕", "✨", "⭐",
  "🙏", "👀", "💯", "🤔", "☺️", "✌️", "©️", "™", "↔️", "🅰️", "🈶", "🀄", "🃏"];
const ZWJ = ["👨‍👩‍👧‍👦", "👩‍💻", "🧑‍🚀", "🏳️‍🌈", "🏴‍☠️", "👁️‍🗨️", "❤️‍🔥", "🐻‍❄️", "👨🏽‍🦰",
  "🧑🏿‍🤝‍🧑🏻", "👩‍❤️‍💋‍👨", "🫱🏼‍🫲🏾"];

function emojiOne() {
  const r = int(0, 9);
  if (r < 3) return pick(EMOJI);
  if (r < 5) return pick(ZWJ);
  if (r < 6) return pick(["👍", "👋", "🤝", "🧑", "💪", "👶"]) + cp(0x1f3fb, 0x1f3ff);
  if (r < 7) return cp(0x1f1e6, 0x1f1ff) + cp(0x1f1e6, 0x1f1ff);  // a flag (or not: any pair)
  if (r < 8) return String(int(0, 9)) + "\ufe0f\u20e3";  // keycap
  if (r < 9) return "🏴\u{e0067}\u{e0062}" + pick(["\u{e0065}\u{e006e}\u{e0067}", "\u{e0073}\u{e0063}\u{e0074}"]) + "\u{e007f}";
  return cp(0x1f300, 0x1faff);
}

function emoji() {
  const n = int(1, 12);
  let s = "";
  for (let i = 0; i < n; i++) {
    if (chance(0.4)) s += word() + pick([" ", "", "  "]);
    s += emojiOne().repeat(chance(0.1) ? int(2, 5) : 1);
    if (chance(0.3)) s += " ";
  }
  return s;
}

// Pairs of NFC-changing forms: canonical singletons, compatibility ideographs, Hangul jamo.
const NFC_CASES = ["\u212b", "\u2126", "\u212a", "\u0344", "\u0340", "\u0374", "\u037e", "\u0387",
  "\uf900", "\uf9ff", "\ufa10", "\u{2f800}", "\u1100\u1161", "\u1100\u1161\u11a8", "\u1112\u1173\u11af",
  "A\u030a", "\u00c5", "e\u0301", "\u00e9", "e\u0323\u0302", "e\u0302\u0323", "\u1ec7", "o\u0308\u0304",
  "\u0958", "\u0915\u093c", "\u09cb", "\u09c7\u09be", "\u0b48", "\u1e9b\u0323", "\u2000", "\u2001",
  "\u00c7\u0301", "C\u0327\u0301", "\u00f1", "n\u0303", "\u0410\u0306", "\u04d0", "\ufb01", "\u2460"];

function combining() {
  const n = int(1, 20);
  let s = "";
  for (let i = 0; i < n; i++) {
    const r = int(0, 9);
    if (r < 4) {
      s += pick("aeiouAEIOUnNcCyYzsw".split(""));
      const marks = int(1, 4);
      for (let k = 0; k < marks; k++) s += cp(0x0300, 0x036f);
    } else if (r < 6) {
      s += pick(NFC_CASES);
    } else if (r < 7) {
      s += cp(0x00c0, 0x017f);
    } else if (r < 8) {
      s += pick(["\u0301", "\u0308", "\u20dd", "\u0489", "\u0e49", "\u05b4"]);  // no base
    } else {
      s += word();
    }
    if (chance(0.3)) s += " ";
  }
  return s;
}

function invalidLooking() {
  const n = int(1, 12);
  let s = "";
  for (let i = 0; i < n; i++) {
    switch (int(0, 11)) {
      case 0: s += "\\x" + int(0, 255).toString(16).padStart(2, "0"); break;
      case 1: s += "\ufffd".repeat(int(1, 3)); break;
      case 2: s += cp(0x80, 0xff); break;
      case 3: s += cp(0x80, 0x9f); break;  // C1 controls
      case 4: s += cp(0x00, 0x1f); break;  // C0 controls, NUL included
      case 5: s += pick(["\ufeff", "\ufffe", "\uffff", "\u{10ffff}", "\u{fffff}", "\ud7fb", "\ue000"]); break;
      case 6: s += "\\u" + int(0xd800, 0xdfff).toString(16); break;  // a surrogate, spelled out
      case 7: s += pick(["Ã©", "Ã¤", "â€™", "â€œ", "Ã", "Â ", "ï»¿", "ð\u009f\u0098\u0080"]); break;  // mojibake
      case 8: s += "%" + int(0x80, 0xff).toString(16).toUpperCase(); break;
      case 9: s += "\u007f"; break;
      case 10: s += cp(0xe000, 0xf8ff); break;  // private use
      default: s += word();
    }
    if (chance(0.4)) s += pick([" ", "", "\n"]);
  }
  return s;
}

const SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>",
  "<think>", "</think>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|vision_pad|>",
  "<|box_start|>", "<tool_response>"];
const NEAR_SPECIALS = ["<|im_sta", "<|im_start", "im_start|>", "<|", "|>", "<|im_end", "<s", "s>",
  "</", "<unk", "< s>", "<S>", "<|IM_START|>", "<<s>>", "<|endoftext|", "[INST]", "[/INST]",
  "<<SYS>>", "▁", "▁▁", "<0x41>", "<0xFF>", "Ġ", "Ċ"];

function specialTokens() {
  const n = int(1, 8);
  let s = "";
  for (let i = 0; i < n; i++) {
    const r = int(0, 9);
    if (r < 4) s += pick(SPECIALS);
    else if (r < 6) s += pick(NEAR_SPECIALS);
    else if (r < 7) s += pick(SPECIALS).repeat(int(2, 3));
    else s += chance(0.5) ? sentence() : pick(["user", "assistant", "system", "\n", " ", "  "]);
    if (chance(0.3)) s += pick([" ", "\n", "  ", "\t"]);
  }
  if (chance(0.1)) {  // a special token cut at a random place
    const t = pick(SPECIALS);
    s += t.slice(0, int(1, t.length - 1));
  }
  return s;
}

function longRun(i) {
  switch (i % 12) {
    case 0: return repeat(i < 24 ? 10000 : int(200, 3000), () => cp(0x61, 0x7a));  // a long word
    case 1: return " ".repeat(int(2, 3000));
    case 2: return repeat(int(20, 2000), () => String(int(0, 9)));
    case 3: return word() + " ".repeat(int(2, 200)) + word();
    case 4: return "\n".repeat(int(2, 500)) + (chance(0.5) ? "x" : "");
    case 5: return pick(["-", "=", "*", ".", "#", "!", "~", "_"]).repeat(int(2, 1000));
    case 6: return "\t".repeat(int(2, 300)) + word();
    case 7: return pick(["ab", "\r\n", "la", "🙂", "的", " a", "'s"]).repeat(int(2, 800));
    case 8: return "a".repeat(int(1000, 10000));
    case 9: return repeat(int(100, 3000), () => cp(0x4e00, 0x9fff));
    case 10: return " \u00a0".repeat(int(2, 300));
    default: return repeat(int(200, 2000), () => cp(0x21, 0x7e));
  }
}

const CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'rE", "'ve", "'VE", "'m", "'M",
  "'ll", "'LL", "'Ll", "'d", "'D", "n't", "N'T", "’s", "’ll", "'", "''", "'x", "'em", "'tis"];

function contractions() {
  const n = int(1, 12);
  let s = "";
  for (let i = 0; i < n; i++) {
    s += pick(["I", "you", "he", "She", "WE", "they", "it", "John", "dog", "don", "can", "won",
      "", " ", "42"]) + pick(CONTRACTIONS);
    s += pick([" ", " ", "", ", ", ". ", "\n"]);
  }
  return s;
}

const GENERATORS = [english, code, cjk, arabic, hindi, emoji, combining, invalidLooking,
  specialTokens, contractions];

function mixed() {
  const n = int(2, 8);
  let s = "";
  for (let i = 0; i < n; i++) {
    const g = pick(GENERATORS)();
    s += g.slice(0, int(1, 40)).replace(/[\ud800-\udbff]$/, "");  // never cut a pair in half
    if (chance(0.3)) s += pick([" ", "", "\n"]);
  }
  return s;
}

const SPACES = [" ", "\t", "\n", "\r", "\r\n", "\u000b", "\u000c", "\u00a0", "\u1680", "\u2002",
  "\u2003", "\u2009", "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u0085",
  "\u180e", "\u2060"];

function whitespace() {
  const n = int(0, 12);
  let s = "";
  for (let i = 0; i < n; i++) {
    s += pick(SPACES).repeat(int(1, 4));
    if (chance(0.2)) s += pick(["a", "1", ".", "é", "中", "🙂"]);
  }
  return s;
}

// Any stable scalar value: 2-byte UTF-8 and below, the rest of the BMP, the astral planes but
// the private use planes 15 and 16 (a few of those come from invalidLooking).
function randomScalar() {
  const r = int(0, 19);
  if (r === 0) return cp(0xf0000, 0x10ffff);
  return r < 8 ? cp(0, 0x7ff) : r < 16 ? cp(0x800, 0xffff) : cp(0x10000, 0xeffff);
}

function randomUnicode() {
  return repeat(int(1, 40), randomScalar);
}

// Handpicked cases: empty, every ASCII character alone, every Latin-1 character alone,
// single specials, boundaries between categories.
function fixed() {
  const out = [["empty", ""], ["empty", ""], ["empty", ""]];
  for (let c = 0; c < 0x100; c++) out.push(["single", String.fromCodePoint(c)]);
  for (const t of [...SPECIALS, ...NEAR_SPECIALS]) {
    out.push(["special_tokens", t], ["special_tokens", " " + t], ["special_tokens", t + " "],
      ["special_tokens", "a" + t + "b"], ["special_tokens", " " + t + " "]);
  }
  for (const c of NFC_CASES) out.push(["combining", c]);
  // Where regex engines disagree on \s (U+0085 is \s to Oniguruma, not to JavaScript's \s;
  // U+FEFF the other way round) and on case folding ((?i:'s) matches "'\u017f" in Oniguruma;
  // the reference folds ASCII only).
  for (const ws of ["\u0085", "\ufeff", "\u180e", "\u200b"]) {
    out.push(["whitespace", `a${ws}${ws}b`], ["whitespace", ` ${ws}x`], ["whitespace", `x${ws}\n`],
      ["whitespace", `x ${ws}`], ["whitespace", ws.repeat(3)], ["whitespace", `a${ws} b`],
      ["whitespace", `1${ws}2`], ["whitespace", `a  ${ws}b`]);
  }
  for (const t of ["'\u017f", "'\u212a", "'\u0130", "'\u0131", "'\u1e9e", "'\ufb06", "'LL", "'lL"]) {
    out.push(["contractions", `it${t}`], ["contractions", `I${t} go`], ["contractions", `we${t}ve`]);
  }
  out.push(["whitespace", " "], ["whitespace", "  "], ["whitespace", "\n"], ["whitespace", "\r\n"],
    ["whitespace", " \n "], ["whitespace", "\t\n\t"], ["english", "Hello world"],
    ["english", " Hello world"], ["english", "Hello  world"], ["english", "hello\nworld"],
    ["contractions", "I'm"], ["contractions", "we'LL"], ["contractions", "it's"],
    ["code", "\tint x;\r\n\tint y;\r\n"], ["emoji", "👨‍👩‍👧‍👦"], ["emoji", "🇺🇸🇬🇧"],
    ["cjk", "你好，世界"], ["arabic", "مرحبا بالعالم"], ["hindi", "नमस्ते दुनिया"]);
  return out;
}

const PLAN = [["english", english, 1500], ["code", code, 1200], ["cjk", cjk, 800],
  ["arabic", arabic, 500], ["hindi", hindi, 500], ["emoji", emoji, 800], ["combining", combining, 800],
  ["invalid_looking", invalidLooking, 600], ["special_tokens", specialTokens, 1000],
  ["long_runs", longRun, 300], ["contractions", contractions, 500], ["mixed", mixed, 1200],
  ["whitespace", whitespace, 400], ["random_unicode", randomUnicode, 800]];

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const entries = fixed();
for (const [category, gen, count] of PLAN) {
  for (let i = 0; i < count; i++) entries.push([category, gen(i)]);
}
const lines = entries.map(([category, text], i) => {
  if (LONE_SURROGATE.test(text)) {
    console.error(`corpus.mjs: string ${i} (${category}) holds a lone surrogate`);
    process.exit(1);
  }
  for (const ch of text) {
    if (!stable(ch.codePointAt(0))) {
      console.error(`corpus.mjs: string ${i} (${category}) holds U+${ch.codePointAt(0).toString(16)}, ` +
                    "not assigned in Unicode 14.0");
      process.exit(1);
    }
  }
  return JSON.stringify({ category, text });
});
const data = lines.join("\n") + "\n";
if (process.argv[2]) fs.writeFileSync(process.argv[2], data);
else process.stdout.write(data);
