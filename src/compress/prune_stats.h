// cogumi/compress (pruning, internal): calibration activations through llama.cpp's eval
// callback, and the importance scores built from them (see prune.h for the measures).
#pragma once

#include <cstdint>
#include <vector>

#include "compress/prune_gguf.h"
#include "engine/model.h"

namespace cogumi {

// Sums of squares per input column of one layer's projections, over every calibration token.
struct PruneLayerActs {
  std::vector<double> attn_in;      // input of attn_q/k/v (n_embd)
  std::vector<double> attn_out_in;  // input of attn_output (n_head * head_dim)
  std::vector<double> ffn_in;       // input of ffn_gate/up (n_embd)
  std::vector<double> ffn_down_in;  // input of ffn_down (n_ff)
  double influence_sum = 0;         // sum over tokens of 1 - cos(layer input, layer output)
  int64_t n_influence = 0;
};

struct PruneActs {
  std::vector<PruneLayerActs> layers;
  int64_t n_tokens = 0;
};

// Runs every chunk through the model (all positions output) and accumulates the statistics.
// Throws Error when a projection's input never reached the callback (an unexpected graph).
PruneActs collect_prune_acts(const Model& model, const std::vector<std::vector<Token>>& chunks, int n_threads);

// Importance of every FFN neuron and KV group of each layer (Wanda), and each layer's block influence.
struct PruneScores {
  std::vector<std::vector<double>> neuron;  // [layer][n_ff]
  std::vector<std::vector<double>> group;   // [layer][n_head_kv]
  std::vector<double> influence;            // [layer]
};

PruneScores prune_scores(const PruneSource& src, const PruneActs& acts);

}  // namespace cogumi
