#!/usr/bin/env python3
"""Writes minimal GGUF seeds for the gguf_* fuzz targets into tests/fuzz/corpus/gguf_{model,lora,checkpoint}/.

Small on purpose (under 1 KB each): libFuzzer mutates every byte of an input, so a seed of a few
hundred bytes reaches the header, key/value, tensor-info and data paths far faster than a real
model. One each of what Cogumi's readers take: a llama model (F32 and F16 tensors: the trainer
widens F16), a LoRA adapter (lora_info / lora merge) and a training checkpoint (state JSON).
The GGUF v3 layout is written by hand so no Python package (numpy, gguf-py) is needed.
"""
import os
import struct
import sys

U32, F32, STR = 4, 6, 8
T_F32, T_F16 = 0, 1
ALIGN = 32


def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, typ, val):
    out = s(key) + struct.pack("<I", typ)
    if typ == U32:
        out += struct.pack("<I", val)
    elif typ == F32:
        out += struct.pack("<f", val)
    elif typ == STR:
        out += s(val)
    return out


def gguf(kvs, tensors):
    """tensors: [(name, [ne0, ne1, ...], type)]; data is a deterministic ramp."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(kv(*x) for x in kvs)
    data = b""
    for name, ne, typ in tensors:
        n = 1
        for d in ne:
            n *= d
        head += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", typ, len(data))
        vals = [((i * 7) % 11 - 5) / 16.0 for i in range(n)]
        blob = struct.pack(f"<{n}f", *vals) if typ == T_F32 else struct.pack(f"<{n}e", *vals)
        data += blob + b"\0" * (-len(blob) % ALIGN)
    head += b"\0" * (-len(head) % ALIGN)
    return head + data


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    e, v = 8, 10
    model = gguf(
        [("general.architecture", STR, "llama"), ("llama.embedding_length", U32, e), ("llama.block_count", U32, 1),
         ("llama.attention.head_count", U32, 2), ("llama.attention.head_count_kv", U32, 2),
         ("llama.feed_forward_length", U32, 16), ("llama.context_length", U32, 32),
         ("llama.rope.freq_base", F32, 10000.0), ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)],
        [("token_embd.weight", [e, v], T_F32), ("output_norm.weight", [e], T_F32),
         ("blk.0.attn_q.weight", [e, e], T_F16)])
    adapter = gguf(
        [("general.type", STR, "adapter"), ("general.architecture", STR, "llama"), ("adapter.type", STR, "lora"),
         ("adapter.lora.alpha", F32, 16.0)],
        [("blk.0.attn_q.weight.lora_a", [e, 2], T_F32), ("blk.0.attn_q.weight.lora_b", [2, e], T_F32)])
    checkpoint = gguf([("cogumi.checkpoint.state", STR, '{"step": 3, "epoch": 0, "rng": "1"}')],
                      [("blk.0.attn_q.weight.lora_a", [e, 2], T_F32)])
    # Each reader's corpus holds all three: a reader handed another's file must refuse it cleanly.
    for target in ("gguf_model", "gguf_lora", "gguf_checkpoint"):
        out = os.path.join(root, target)
        os.makedirs(out, exist_ok=True)
        for name, blob in (("min_model", model), ("min_adapter", adapter), ("min_checkpoint", checkpoint)):
            with open(os.path.join(out, name), "wb") as f:
                f.write(blob)


if __name__ == "__main__":
    main()
