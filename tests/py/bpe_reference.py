#!/usr/bin/python3
"""Independent re-statement of byte-level BPE, for tests/reference/test_bpe_train_python.cpp.

Written from the definition, sharing no code with src/tokenizer/: the GPT-2 pre-tokenizer regex
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
as a hand-written scanner (the stdlib `re` has no \\p{L}; Debian has no `regex` or `tokenizers`),
GPT-2's byte -> printable character table, merges applied by rank, and the trainer (most frequent
pair, ties by the raw bytes of left then right token). Not a tokenizer library: just enough to
cross-check ours.

  bpe_reference.py encode TOKENIZER_JSON TEXTS_JSON   -> JSON list of id lists (special tokens parsed)
  bpe_reference.py train TEXTS_JSON VOCAB_SIZE SPECIALS_JSON -> JSON {"tokens": [...], "merges": [[l, r], ...]}
"""

import json
import sys
import unicodedata

WHITE_SPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def is_letter(ch):
    return unicodedata.category(ch).startswith("L")


def is_number(ch):
    return unicodedata.category(ch).startswith("N")


def is_other(ch):
    return not (ch in WHITE_SPACE or is_letter(ch) or is_number(ch))


def pre_tokenize(text):
    words, i, n = [], 0, len(text)
    while i < n:
        # 's|'t|'re|'ve|'m|'ll|'d
        if text[i] == "'":
            hit = None
            for suffix in ("s", "t", "re", "ve", "m", "ll", "d"):
                if text.startswith("'" + suffix, i):
                    hit = "'" + suffix
                    break
            if hit:
                words.append(hit)
                i += len(hit)
                continue
        # ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' in that order
        matched = False
        for cls in (is_letter, is_number, is_other):
            for start in ((i + 1, i) if text[i] == " " else (i,)):
                j = start
                while j < n and cls(text[j]):
                    j += 1
                if j > start:
                    words.append(text[i:j])
                    i = j
                    matched = True
                    break
            if matched:
                break
        if matched:
            continue
        # '\s+(?!\S)' then '\s+'
        k = i
        while k < n and text[k] in WHITE_SPACE:
            k += 1
        assert k > i, "scanner stuck at %r" % text[i:]
        if k < n and k - i >= 2:
            k -= 1  # leave the last space for ' ?\p{L}+' and friends
        words.append(text[i:k])
        i = k
    return words


def byte_table():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHAR = byte_table()


def to_byte_level(raw):
    return "".join(BYTE_CHAR[b] for b in raw)


def split_specials(text, specials):
    """[(piece, is_special)], longest special first at each position."""
    out, i, start = [], 0, 0
    ordered = sorted(specials, key=len, reverse=True)
    while i < len(text):
        hit = next((s for s in ordered if text.startswith(s, i)), None)
        if hit:
            if i > start:
                out.append((text[start:i], False))
            out.append((hit, True))
            i += len(hit)
            start = i
        else:
            i += 1
    if start < len(text):
        out.append((text[start:], False))
    return out


def bpe_word(symbols, ranks):
    while len(symbols) > 1:
        best = None
        for a, b in zip(symbols, symbols[1:]):
            r = ranks.get((a, b))
            if r is not None and (best is None or r < best[0]):
                best = (r, a, b)
        if best is None:
            break
        _, a, b = best
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                merged.append(a + b)
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def encode(tokenizer_json, texts):
    tj = json.load(open(tokenizer_json, encoding="utf-8"))
    vocab = tj["model"]["vocab"]
    ranks = {}
    for r, m in enumerate(tj["model"]["merges"]):
        left, right = (m if isinstance(m, list) else m.split(" ", 1))
        ranks[(left, right)] = r
    specials = {a["content"]: a["id"] for a in tj.get("added_tokens", [])}
    out = []
    for text in texts:
        ids = []
        for piece, special in split_specials(text, list(specials)):
            if special:
                ids.append(specials[piece])
                continue
            for word in pre_tokenize(piece):
                for sym in bpe_word(list(to_byte_level(word.encode("utf-8"))), ranks):
                    ids.append(vocab[sym])
        out.append(ids)
    return out


def train(texts, vocab_size, specials):
    counts = {}
    for text in texts:
        for piece, special in split_specials(text, specials):
            if special:
                continue
            for word in pre_tokenize(piece):
                counts[word] = counts.get(word, 0) + 1
    raw = [s.encode("utf-8") for s in specials] + [bytes([b]) for b in range(256)]
    tokens = list(specials) + [BYTE_CHAR[b] for b in range(256)]
    raw_id = {bytes([b]): len(specials) + b for b in range(256)}
    words = [([len(specials) + b for b in w.encode("utf-8")], c) for w, c in sorted(counts.items())]
    merges, done = [], set()
    while len(tokens) < vocab_size:
        pairs = {}
        for syms, c in words:
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        (a, b), count = min(pairs.items(), key=lambda kv: (-kv[1], raw[kv[0][0]], raw[kv[0][1]]))
        if count < 2:
            break
        new_raw = raw[a] + raw[b]
        if new_raw in raw_id:
            m = raw_id[new_raw]
        else:
            m = len(tokens)
            raw_id[new_raw] = m
            raw.append(new_raw)
            tokens.append(to_byte_level(new_raw))
        if (a, b) not in done:
            done.add((a, b))
            merges.append([tokens[a], tokens[b]])
        new_words = []
        for syms, c in words:
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(m)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            new_words.append((out, c))
        words = new_words
    return {"tokens": tokens, "merges": merges}


def main():
    if sys.argv[1] == "encode":
        texts = json.load(open(sys.argv[3], encoding="utf-8"))
        print(json.dumps(encode(sys.argv[2], texts)))
    elif sys.argv[1] == "train":
        texts = json.load(open(sys.argv[2], encoding="utf-8"))
        specials = json.loads(sys.argv[4])
        print(json.dumps(train(texts, int(sys.argv[3]), specials), ensure_ascii=False))
    else:
        sys.exit("usage: bpe_reference.py encode|train ...")


if __name__ == "__main__":
    main()
