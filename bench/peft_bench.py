"""PyTorch + transformers + peft LoRA training speed on random-init Llama shapes: the peer of
`cogumi train` in bench/device.sh train. bf16 weights, sdpa attention, LoRA r=16 on all seven
linear modules, AdamW, no activation checkpointing. Prints one JSON line per configuration."""
import json, sys, time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, tie_word_embeddings=True, rope_theta=500000.0),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, tie_word_embeddings=False, rope_theta=500000.0),
}


def run(shape, batch, seq, steps, rank=16):
    cfg = LlamaConfig(vocab_size=128256, max_position_embeddings=8192, attn_implementation="sdpa", **SHAPES[shape])
    torch.manual_seed(1)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    lcfg = LoraConfig(r=rank, lora_alpha=rank, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                               "up_proj", "down_proj"], lora_dropout=0.0)
    model = get_peft_model(model, lcfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(300, 128000, (batch, seq), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps):
        torch.cuda.synchronize()
        t = time.time()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.time() - t)
    warm = times[2:] if len(times) > 3 else times
    tps = batch * seq * len(warm) / sum(warm)
    print(json.dumps({"impl": "peft", "shape": shape, "batch": batch, "seq": seq, "steps": steps,
                      "tokens_per_s": round(tps, 1),
                      "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}), flush=True)
    del model, opt
    torch.cuda.empty_cache()


if __name__ == "__main__":
    for spec in sys.argv[1:]:
        shape, batch, seq, steps = spec.split(":")
        run(shape, int(batch), int(seq), int(steps))
