#!/usr/bin/python3
"""PyTorch reference for head ablation, for tests only: the logits of a model with ONE query head's
attention output multiplied by 0 before o_proj (llama_reference.forward with head_mask), so the C++
"zero columns [h*hd, (h+1)*hd) of o_proj" can be checked against "zero the head's output".

Usage: head_ablation_reference.py OUT_DIR
For each case of ABLATIONS writes OUT_DIR/<case>/ as `llama_reference.py OUT_DIR/<case> <case>` does
(config.json, model.safetensors, prompts.json, logits_<i>.f64) plus, per ablated (layer, head),
logits_L<layer>H<head>_<i>.f64 (raw little-endian float64, [len(prompt_i), vocab]).
One process for all cases: importing torch is the slow part.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference  # noqa: E402

# case -> (layer, head) pairs; gqa has 8 query heads over 2 kv heads, tied 6 over 1 (MQA).
ABLATIONS = {"gqa": [(1, 5), (0, 0)], "tied": [(2, 3), (1, 5)]}


def main():
    out = sys.argv[1]
    for case, pairs in ABLATIONS.items():
        d = os.path.join(out, case)
        cfg, w, prompts = llama_reference.write_case(d, case)
        for layer, head in pairs:
            mask = torch.ones(cfg["num_hidden_layers"], cfg["num_attention_heads"], dtype=torch.float64)
            mask[layer, head] = 0.0
            with torch.no_grad():
                for i, ids in enumerate(prompts):
                    logits = llama_reference.forward(cfg, w, ids, head_mask=mask)
                    logits.numpy().astype("<f8").tofile(os.path.join(d, f"logits_L{layer}H{head}_{i}.f64"))
    print("ok")


if __name__ == "__main__":
    main()
