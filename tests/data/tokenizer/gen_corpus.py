#!/usr/bin/env python3
"""gen_corpus.py — writes corpus.txt: the test strings every tokenizer reference is computed on,
one per line as lowercase hex of its bytes (so tabs, newlines, NUL and invalid UTF-8 survive),
each followed by a tab and a short tag. Hand-written cases plus deterministic slices of
../shared/testbed/eval/*.txt. Run from anywhere: python3 gen_corpus.py [shared_dir]."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(HERE, '..', '..', '..', '..', 'shared'))

cases = []


def add(tag, s):
    b = s.encode('utf-8') if isinstance(s, str) else s
    cases.append((tag, b))


# ---- empty, whitespace -------------------------------------------------------------------
for s in ['', ' ', '  ', '   ', '\t', '\n', '\r\n', ' \n ', '\n\n\n', '\t\t', ' \t ', '\u00a0',
          'a', ' a', '  a', 'a ', 'a  ', ' a ', 'hello  world', 'hello   world  ', '  hello   world  ',
          'hello\tworld', 'hello\nworld', 'hello \n world', 'line1\r\nline2\r\n', 'x \t\n\t y',
          'tabs\tand\t\tmore\t\t\ttabs', 'trailing newline\n', '\n leading newline',
          'many      spaces      here', 'a\u3000b', 'a\u2003b\u2009c', 'a\u00a0\u00a0b', 'end with spaces   ',
          '\x0b\x0c vertical tab and form feed', 'a\x1cb\x1dc', 'x\x85y', 'nul\x00byte', '\x00']:
    add('space', s)

# ---- prose ------------------------------------------------------------------------------
for s in ['Hello world', 'Hello, world!', 'The quick brown fox jumps over the lazy dog.',
          "It's a dog's life, isn't it? We're here; they've gone. I'm sure you'll see, he'd say.",
          "IT'S LOUD. DON'T SHOUT. 'S 'T 'RE 'VE 'M 'LL 'D",
          "rock 'n' roll, 'quoted', \"double\", `back`",
          'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
          'Mr. Smith went to Washington D.C. on Jan. 5th, 2021 -- and stayed.',
          'e-mail: someone@example.com, web: https://www.example.org/path?q=1&x=y#frag',
          'CamelCaseWordsAndsnake_case_words and kebab-case-words',
          'ALL CAPS SENTENCE WITH NUMBERS 123 AND SYMBOLS #@!',
          'Ellipsis... and em—dash – en dash and “curly quotes” ‘single’ «guillemets»',
          'The license is granted "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.',
          'Section 2(a)(iii): the Licensee shall not, without prior written consent, sublicense.',
          'Q: What is 2+2?\nA: 4.', 'Dear Sir/Madam,\n\nThank you.\n\nRegards,\nBob',
          'one two three four five six seven eight nine ten', 'a b c d e f g h i j k l m n o p']:
    add('prose', s)

# ---- code --------------------------------------------------------------------------------
for s in ['def f(x):\n    return x * 2\n',
          'import os, sys\n\nclass Foo(object):\n    """Docstring."""\n    def __init__(self):\n        self.x = {"a": [1, 2, 3]}\n',
          'for i in range(10):\n\tprint(f"{i:03d}", end="")\n',
          'if __name__ == "__main__":\n    main()\n',
          'lambda x, y: x**2 + y // 3 % 4 != 5 and not x <= y >= z',
          '#include <stdio.h>\n\nint main(int argc, char **argv) {\n    printf("hello %s\\n", argv[0]);\n    return 0;\n}\n',
          'static inline uint32_t f(const uint8_t *p) { return p[0] | (p[1] << 8); }',
          'x->y = &z; a[i++] = *b--; c ^= ~d; e >>= 2; /* comment */ // line comment',
          '#define MAX(a, b) ((a) > (b) ? (a) : (b))\n#ifdef __linux__\n#endif',
          '#!/bin/sh\nset -e\nfor f in *.txt; do\n  echo "$f" | grep -q foo && rm -f "$f"\ndone\n',
          'if [ -d /run/systemd/system ] ; then\n\tsystemctl --system daemon-reload >/dev/null || true\nfi',
          'ls -la | awk \'{print $9}\' | sort -u > /tmp/out.txt 2>&1 &',
          'export PATH="$HOME/.local/bin:$PATH"; cd ~/src && make -j$(nproc)',
          '{"key": "value", "list": [1, 2.5, -3e10, true, null], "nested": {"a": {}}}',
          '<html><body class="main"><p>Hi &amp; bye</p></body></html>',
          'SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;',
          '    indented with four spaces\n        and eight\n\t\tand two tabs',
          'a=1;b=2;c=a+b;;;;', '()[]{}<>', '!!!???...,,,;;;:::', '====', '----', '____', '####', '~~~```',
          '0x1F 0b1010 0o777 1e-5 3.14159 -42 +7 1_000_000']:
    add('code', s)

# ---- digits and numbers ---------------------------------------------------------------------
for s in ['0', '7', '42', '123', '1234', '12345', '1234567890', '3141592653589793238462643383279502884197',
          '2024-01-15 13:45:00', '$1,234.56', '100%', '1st 2nd 3rd 4th', 'v1.2.3-rc4', 'x1y2z3',
          'phone +1 (555) 123-4567', 'IPv4 192.168.0.1 port 8080', ' 12 345 6789 ',
          '٠١٢٣٤٥٦٧٨٩ ١٢٣', '²³ ½ ¾ Ⅷ ⅻ ①②③', '１２３ full-width', '९८७ देवनागरी']:
    add('digits', s)

# ---- Unicode ---------------------------------------------------------------------------------
for s in ['café naïve résumé façade Ångström', 'Grüße aus Köln, schöne Straße', 'ñandú pingüino',
          'Ελληνικά γράμματα', 'Русский текст, привет мир', 'Українська мова', 'ქართული',
          '日本語のテキストです。', '中文文本，你好世界！', '한국어 텍스트입니다', 'ไทย ภาษา',
          'हिन्दी भाषा', 'বাংলা', 'עברית מימין לשמאל', 'العربية من اليمين إلى اليسار',
          'mixed English עברית and العربية', 'emoji 😀😃😄 👍🏽 🇫🇷 👨‍👩‍👧‍👦', '❤️ ✨ ☕ ♻️',
          'e\u0301 a\u0308 o\u0302 (combining marks)', 'Zalgo: z\u0351\u0352a\u0353l\u0354g\u0355o',
          '\u200b zero width \u200c\u200d joiners \ufeff bom', 'soft\u00adhyphen', 'ﬁ ligature ﬀ',
          'math: ∀x∈ℝ, ∑ᵢ xᵢ² ≤ ∞ → ∅', 'arrows ← ↑ → ↓ ↔', 'box ┌─┐│└┘', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙',
          '\u2126 \u212b \u212a (compat letters)', 'ǅ ǈ ǋ titlecase', "ſ long s and 'ſ", "'ſ 'S 'T 'Ll 'RE",
          '\u0600\u0601 Arabic number sign', 'ḍ ṃ ṛ ṣ ṭ', 'Tiếng Việt có dấu', 'ʻokina ʼapostrophe',
          'Ⓐⓑⓒ', '¡¿ inverted', '§ ¶ † ‡ • ° ± × ÷', '€ £ ¥ ₹ ₿ ¢', '😀', '🇺🇳', '\U0001F9D1\u200d\U0001F4BB',
          'a😀b', '😀 😀  😀', 'x\U00010000y', '\ue000 private use', 'Ⅰ Ⅱ Ⅲ', 'ᚠᚢᚦ runic', '𐍈 gothic']:
    add('unicode', s)

# ---- special-token texts (literal unless parse_special) --------------------------------------
for s in ['<s>', '</s>', '<unk>', '<s>hello</s>', 'a<s>b', ' <s> ', '<s><s>', '<0x41>', '<pad>',
          '<|endoftext|>', '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
          '<|im_start|><|im_end|>', 'x<|im_end|>y', '<|im_start', 'im_start|>', '<repo_name>foo<file_sep>',
          '<jupyter_code>print(1)<jupyter_output>1', '<empty_output>', '< s >', '<<s>>', '<|endoftext|><|endoftext|>',
          'a  <|im_start|>  b', 'x <|im_end|>\n\n y', '\u3000<|im_start|>\u3000', '<|im_end|> \t<|im_start|>',
          ' <s> </s>  <unk> ']:
    add('special', s)

# ---- invalid UTF-8 (SentencePiece accepts bytes; JSON-based references are skipped) ------------
for b in [b'\xff', b'ab\xffc', b'\xc3', b'\xc3(', b'\xe2\x82', b'\xe2\x82x', b'\xed\xa0\x80',
          b'\xc0\xaf', b'\xf5\x80\x80\x80', b'\x80\x80', b'valid \xf0\x9f\x98 truncated emoji',
          b'\xf4\x90\x80\x80', b'\xe0\x80\x80', b'x\xfey\xfez']:
    add('invalid', b)

# ---- slices of the eval texts ----------------------------------------------------------------
for name in ['python', 'c', 'shell', 'english', 'legal']:
    with open(os.path.join(SHARED, 'testbed', 'eval', name + '.txt'), 'rb') as f:
        data = f.read()
    text = data.decode('utf-8')
    n = len(text)
    # 16 slices per file: varied lengths, deterministic positions, cut at character boundaries
    for k in range(16):
        start = (k * 7919 * 13) % max(1, n - 1)
        length = [1, 3, 8, 17, 40, 80, 120, 200, 333, 500, 64, 12, 777, 1000, 256, 2000][k]
        add('eval-' + name, text[start:start + length])

with open(os.path.join(HERE, 'corpus.txt'), 'w') as f:
    f.write('# hex(bytes)<TAB>tag — generated by gen_corpus.py; %d strings\n' % len(cases))
    for tag, b in cases:
        f.write('%s\t%s\n' % (b.hex(), tag))
print('%d strings' % len(cases))
