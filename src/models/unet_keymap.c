/* Original (LDM / single-file) UNet names -> diffusers names, derived from the
 * config (the block numbering of input_blocks/output_blocks depends on
 * layers_per_block and on which levels have attention).
 *
 *   time_embed.{0,2}              -> time_embedding.linear_{1,2}
 *   label_emb.0.{0,2}             -> add_embedding.linear_{1,2}          (SDXL)
 *   input_blocks.0.0              -> conv_in
 *   input_blocks.K.0 (resnet)     -> down_blocks.i.resnets.j
 *   input_blocks.K.1              -> down_blocks.i.attentions.j
 *   input_blocks.K.0.op           -> down_blocks.i.downsamplers.0.conv
 *   middle_block.{0,1,2}          -> mid_block.{resnets.0, attentions.0, resnets.1}
 *   output_blocks.K.0             -> up_blocks.i.resnets.j
 *   output_blocks.K.1             -> up_blocks.i.attentions.j (or the upsampler
 *                                    when the block has no attention)
 *   output_blocks.K.{1,2}.conv    -> up_blocks.i.upsamplers.0.conv
 *   out.{0,2}                     -> conv_norm_out, conv_out
 * inside resnets: in_layers.{0,2} -> norm1, conv1; emb_layers.1 -> time_emb_proj;
 * out_layers.{0,3} -> norm2, conv2; skip_connection -> conv_shortcut.
 * Attention internals (norm, proj_in, transformer_blocks..., proj_out) keep
 * their names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/unet.h"

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int emit(char *out, size_t n, const char *a, const char *b) {
  int k = snprintf(out, n, "%s%s", a, b);
  return k > 0 && (size_t)k < n;
}

/* Parse "<num>.<num>.rest": returns 1 and sets K, M, rest. */
static int parse_km(const char *s, long *K, long *M, const char **rest) {
  char *end;
  *K = strtol(s, &end, 10);
  if (end == s || *end != '.' || *K < 0) return 0;
  s = end + 1;
  *M = strtol(s, &end, 10);
  if (end == s || *end != '.' || *M < 0) return 0;
  *rest = end + 1;
  return 1;
}

static int map_resnet(char *out, size_t n, const char *prefix, const char *rest) {
  static const char *const tab[][2] = {
      {"in_layers.0.", "norm1."},         {"in_layers.2.", "conv1."},
      {"emb_layers.1.", "time_emb_proj."}, {"out_layers.0.", "norm2."},
      {"out_layers.3.", "conv2."},        {"skip_connection.", "conv_shortcut."},
  };
  for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
    if (starts(rest, tab[i][0])) {
      char p[128];
      snprintf(p, sizeof p, "%s.%s", prefix, tab[i][1]);
      return emit(out, n, p, rest + strlen(tab[i][0]));
    }
  return 0;
}

int dg_unet_ldm_key_map(const char *name, char *out, size_t n, void *ud) {
  const dg_unet_config *c = ud;
  char p[96];
  long K, M;
  const char *rest;
  if (!c || c->n_levels < 1 || c->n_levels > DG_UNET_MAX_LEVELS) return 0;
  if (starts(name, "time_embed.0.")) return emit(out, n, "time_embedding.linear_1.", name + 13);
  if (starts(name, "time_embed.2.")) return emit(out, n, "time_embedding.linear_2.", name + 13);
  if (starts(name, "label_emb.0.0.")) return emit(out, n, "add_embedding.linear_1.", name + 14);
  if (starts(name, "label_emb.0.2.")) return emit(out, n, "add_embedding.linear_2.", name + 14);
  if (starts(name, "out.0.")) return emit(out, n, "conv_norm_out.", name + 6);
  if (starts(name, "out.2.")) return emit(out, n, "conv_out.", name + 6);

  if (starts(name, "input_blocks.") && parse_km(name + 13, &K, &M, &rest)) {
    if (K == 0) return M == 0 && emit(out, n, "conv_in.", rest);
    long k = 1;
    for (int i = 0; i < c->n_levels; i++) {
      for (int j = 0; j < c->layers_per_block[i]; j++, k++) {
        if (k != K) continue;
        if (M == 0) {
          snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
          return map_resnet(out, n, p, rest);
        }
        if (M == 1 && c->down_cross_attn[i]) {
          snprintf(p, sizeof p, "down_blocks.%d.attentions.%d.", i, j);
          return emit(out, n, p, rest);
        }
        return 0;
      }
      if (i < c->n_levels - 1) {
        if (k == K) {
          if (M != 0 || !starts(rest, "op.")) return 0;
          snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv.", i);
          return emit(out, n, p, rest + 3);
        }
        k++;
      }
    }
    return 0;
  }

  if (starts(name, "middle_block.")) {
    char *end;
    M = strtol(name + 13, &end, 10);
    if (end == name + 13 || *end != '.') return 0;
    rest = end + 1;
    if (M == 0) return map_resnet(out, n, "mid_block.resnets.0", rest);
    if (M == 1) return emit(out, n, "mid_block.attentions.0.", rest);
    if (M == 2) return map_resnet(out, n, "mid_block.resnets.1", rest);
    return 0;
  }

  if (starts(name, "output_blocks.") && parse_km(name + 14, &K, &M, &rest)) {
    long k = 0;
    for (int i = 0; i < c->n_levels; i++) {
      int r = c->n_levels - 1 - i;
      int nres = c->layers_per_block[r] + 1;
      int attn = c->up_cross_attn[i];
      int sampler = i < c->n_levels - 1;
      for (int j = 0; j < nres; j++, k++) {
        if (k != K) continue;
        if (M == 0) {
          snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
          return map_resnet(out, n, p, rest);
        }
        if (M == 1 && attn) {
          snprintf(p, sizeof p, "up_blocks.%d.attentions.%d.", i, j);
          return emit(out, n, p, rest);
        }
        if (sampler && j == nres - 1 && M == (attn ? 2 : 1) && starts(rest, "conv.")) {
          snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv.", i);
          return emit(out, n, p, rest + 5);
        }
        return 0;
      }
    }
    return 0;
  }
  return 0;
}
