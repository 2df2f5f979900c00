// gen_bpe.mjs — Hugging Face tokenizers reference ids for corpus.txt, made with the npm package
// `tokenizers` (the Rust library's Node binding) and cross-checked with the independent
// JavaScript implementation `@huggingface/tokenizers`. Install both in a folder outside the
// repository and run from there:  node /path/to/gen_bpe.mjs [shared_dir]
//
// Writes hf_<case>.txt: hex(text) <TAB> ids <TAB> hex(decode(ids, skip_special_tokens)) for each
// case below (strings that are not valid UTF-8 are left out: a JS string cannot hold them), and
// hf_<case>_files.txt for whole eval files (n ids, FNV-1a 64 of the ids as int32 LE).
// Variants are the original tokenizer.json with the edits listed in VARIANTS (the C test makes
// the same edits); "plain" drops added_tokens, giving the ids of parse_special = false;
// "strip" sets lstrip on <|im_start|> and rstrip on <|im_end|>.
import fs from 'fs';
import path from 'path';
import { createRequire } from 'module';
import { fileURLToPath } from 'url';

const require = createRequire(path.join(process.cwd(), 'x.js'));
const { Tokenizer } = require('tokenizers');
const hfjs = await import(path.join(process.cwd(), 'node_modules/@huggingface/tokenizers/dist/tokenizers.mjs'));
const here = path.dirname(fileURLToPath(import.meta.url));
const shared = process.argv[2] || path.resolve(here, '../../../../shared');
const SMOLLM = 'models/smollm135m-instruct-lora-medflashcards/tokenizer/tokenizer.json';
const BASE = 'testbed/base/tokenizer.json';
const LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const split = (re) => ({ type: 'Sequence', pretokenizers: [
  { type: 'Split', pattern: { Regex: re }, behavior: 'Isolated', invert: false },
  { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] });
const meta = (scheme, sp) => ({ type: 'Metaspace', replacement: '\u2581', prepend_scheme: scheme, split: sp });
export const VARIANTS = {
  base: [BASE, (j) => j],
  base_plain: [BASE, (j) => { j.added_tokens = []; return j; }],
  base_metaspace: [BASE, (j) => { j.normalizer = null; j.pre_tokenizer = meta('first', false); j.decoder = meta('first', false); return j; }],
  base_metaspace_split: [BASE, (j) => { j.normalizer = null; j.pre_tokenizer = meta('always', true); j.decoder = meta('always', true); return j; }],
  stories260K: ['testbed/stories260K/tokenizer.json', (j) => j],
  smollm: [SMOLLM, (j) => j],
  smollm_plain: [SMOLLM, (j) => { j.added_tokens = []; return j; }],
  smollm_llama3: [SMOLLM, (j) => { j.pre_tokenizer = split(LLAMA3); j.model.ignore_merges = true; return j; }],
  smollm_qwen2: [SMOLLM, (j) => { j.pre_tokenizer = split(QWEN2); return j; }],
  smollm_strip: [SMOLLM, (j) => { j.added_tokens[1].lstrip = true; j.added_tokens[2].rstrip = true; return j; }],
  smollm_prefix: [SMOLLM, (j) => { j.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }; return j; }],
};

function fnv64(ids) {
  let h = 0xcbf29ce484222325n;
  const buf = Buffer.alloc(4);
  for (const id of ids) {
    buf.writeInt32LE(id);
    for (const b of buf) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xFFFFFFFFFFFFFFFFn;
  }
  return h.toString(16).padStart(16, '0');
}

const corpus = fs.readFileSync(path.join(here, 'corpus.txt'), 'utf8').split('\n')
  .filter((l) => l && !l.startsWith('#')).map((l) => Buffer.from(l.split('\t')[0], 'hex'));
const utf8 = new TextDecoder('utf-8', { fatal: true });
const pkg = (name) => JSON.parse(fs.readFileSync(path.join(process.cwd(), 'node_modules', name, 'package.json'))).version;
const summary = [];
for (const [name, [rel, edit]] of Object.entries(VARIANTS)) {
  const json = edit(JSON.parse(fs.readFileSync(path.join(shared, rel), 'utf8')));
  const tok = Tokenizer.fromString(JSON.stringify(json));
  const js = new hfjs.Tokenizer(json, {});
  const lines = [`# tokenizers ${pkg('tokenizers')} (Rust, Node binding) on ${rel}, variant ${name}: hex(text)\tids\thex(decode(ids, skip_special_tokens)) or = when it is the text`];
  let n = 0, agree = 0;
  const disagree = [];
  for (const b of corpus) {
    let s;
    try { s = utf8.decode(b); } catch { continue; }
    const ids = (await tok.encode(s, null, { addSpecialTokens: false })).getIds();
    const dec = await tok.decode(ids, true);
    lines.push(`${b.toString('hex')}\t${ids.join(' ')}\t${Buffer.from(dec, 'utf8').equals(b) ? '=' : Buffer.from(dec, 'utf8').toString('hex')}`);
    n++;
    let jsIds = null;
    try { jsIds = js.encode(s, { add_special_tokens: false }).ids; } catch (e) { jsIds = ['error ' + e.message]; }
    if (jsIds.join(' ') === ids.join(' ')) agree++; else disagree.push(JSON.stringify(s).slice(0, 60));
  }
  fs.writeFileSync(path.join(here, `hf_${name}.txt`), lines.join('\n') + '\n');
  summary.push(`${name}: ${n} strings; @huggingface/tokenizers ${pkg('@huggingface/tokenizers')} agrees on ${agree}` +
               (disagree.length ? `; differs on ${disagree.length}, e.g. ${disagree.slice(0, 3).join(', ')}` : ''));
  if (name === 'smollm' || name === 'base') {
    const fl = [`# tokenizers ${pkg('tokenizers')} on ${rel}: eval file\tn_ids\tfnv1a64(ids as int32 LE)`];
    for (const f of ['python', 'c', 'shell', 'english', 'legal']) {
      const text = fs.readFileSync(path.join(shared, 'testbed/eval', f + '.txt'), 'utf8');
      const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
      fl.push(`${f}\t${ids.length}\t${fnv64(ids)}`);
    }
    fs.writeFileSync(path.join(here, `hf_${name}_files.txt`), fl.join('\n') + '\n');
  }
}
fs.writeFileSync(path.join(here, 'crosscheck.txt'), '# gen_bpe.mjs: Rust tokenizers vs the JavaScript @huggingface/tokenizers\n' + summary.join('\n') + '\n');
console.log(summary.join('\n'));
