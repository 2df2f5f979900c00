#!/usr/bin/python3
"""gen_spm.py — SentencePiece reference ids for corpus.txt, made with Debian's
python3-sentencepiece (run it with /usr/bin/python3; `apt-get install python3-sentencepiece`).

Writes, for each model (testbed base and stories260K tokenizer.model):
  spm_<name>.txt        hex(text) <TAB> ids (space-separated, no BOS) <TAB> hex(decode(ids))
  spm_<name>_files.txt  eval file name <TAB> number of ids <TAB> FNV-1a 64 of the ids (int32 LE)
Usage: /usr/bin/python3 gen_spm.py [shared_dir]"""
import os
import struct
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(HERE, '..', '..', '..', '..', 'shared'))
MODELS = {'base': 'testbed/base/tokenizer.model', 'stories260K': 'testbed/stories260K/tokenizer.model'}
FILES = ['python', 'c', 'shell', 'english', 'legal']


def fnv64(ids):
    h = 0xcbf29ce484222325
    for b in b''.join(struct.pack('<i', i) for i in ids):
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def corpus():
    with open(os.path.join(HERE, 'corpus.txt')) as f:
        for line in f:
            if line.startswith('#'):
                continue
            yield bytes.fromhex(line.split('\t')[0])


for name, rel in MODELS.items():
    sp = spm.SentencePieceProcessor(model_file=os.path.join(SHARED, rel))
    with open(os.path.join(HERE, 'spm_%s.txt' % name), 'w') as out:
        out.write('# sentencepiece %s on %s: hex(text)\tids\thex(decode(ids)) or = when it is the text\n' % (spm.__version__, rel))
        for b in corpus():
            ids = sp.encode(b)  # bytes in: invalid UTF-8 reaches SentencePiece as it is
            dec = sp.decode(ids).encode('utf-8')
            out.write('%s\t%s\t%s\n' % (b.hex(), ' '.join(map(str, ids)), '=' if dec == b else dec.hex()))
    with open(os.path.join(HERE, 'spm_%s_files.txt' % name), 'w') as out:
        out.write('# sentencepiece %s on %s: eval file\tn_ids\tfnv1a64(ids as int32 LE)\n' % (spm.__version__, rel))
        for fn in FILES:
            with open(os.path.join(SHARED, 'testbed', 'eval', fn + '.txt'), 'rb') as f:
                ids = sp.encode(f.read())
            out.write('%s\t%d\t%016x\n' % (fn, len(ids), fnv64(ids)))
    print(name, 'done')
