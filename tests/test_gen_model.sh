# daguerre gen-model: random-weight SD1.5 models in both layouts.
#  - tiny, seed 1234, f32 reproduces the reference fixtures bit for bit (same
#    generator, same init, same names: diffusers folder and LDM single file);
#  - both layouts load with the SD1.5 loader and give bit-identical outputs
#    (text encoder, UNet, VAE decode and encode) in f32, f16 and bf16;
#  - seeds are deterministic; bad arguments fail cleanly.
set -u
BIN=${DAGUERRE_BIN:?DAGUERRE_BIN not set}
DATA=${DG_TEST_DATA:?DG_TEST_DATA not set}
PY=${DG_TEST_PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=python3
FIX=$DATA/sd15-tiny
TOK=$FIX/diffusers/tokenizer
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Tensor-by-tensor comparison of two safetensors files (names, dtypes, shapes, bytes).
cat >"$T/st_cmp.py" <<'EOF'
import json, struct, sys
def load(p):
    with open(p, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        h = json.loads(f.read(n))
        d = f.read()
    h.pop('__metadata__', None)
    return {k: (v['dtype'], v['shape'], d[v['data_offsets'][0]:v['data_offsets'][1]]) for k, v in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
if set(a) != set(b):
    print('names differ:', sorted(set(a) ^ set(b))[:5]); sys.exit(1)
diff = [k for k in a if a[k] != b[k]]
if diff:
    print(len(diff), 'tensors differ, e.g.', diff[:3]); sys.exit(1)
want = sys.argv[3] if len(sys.argv) > 3 else None
if want and any(v[0] not in (want, 'I64') for v in a.values()):
    print('dtype is not', want); sys.exit(1)
print(len(a), 'tensors identical')
EOF
# dtype check of one file
cat >"$T/st_dtypes.py" <<'EOF'
import json, struct, sys
with open(sys.argv[1], 'rb') as f:
    h = json.loads(f.read(struct.unpack('<Q', f.read(8))[0]))
meta = h.pop('__metadata__', {})
print(' '.join(sorted(set(v['dtype'] for v in h.values()))), len(h), ' '.join(sorted(meta)))
EOF

gen() { "$BIN" gen-model --arch sd15 --size tiny "$@" 2>"$T/gen.err" || { cat "$T/gen.err"; return 1; }; }

# 1. the fixtures, reproduced
gen --dtype f32 --layout diffusers --seed 1234 --tokenizer "$TOK" -o "$T/d32" || bad "gen diffusers f32"
gen --dtype f32 --layout single --seed 1234 -o "$T/s32.safetensors" || bad "gen single f32"
for p in unet/diffusion_pytorch_model vae/diffusion_pytorch_model text_encoder/model; do
  if "$PY" "$T/st_cmp.py" "$T/d32/$p.safetensors" "$FIX/diffusers/$p.safetensors"; then ok "diffusers $p = fixture"
  else bad "diffusers $p differs from the fixture"; fi
done
if "$PY" "$T/st_cmp.py" "$T/s32.safetensors" "$FIX/sd15-tiny.safetensors"; then ok "single file = fixture"
else bad "single file differs from the fixture"; fi
for f in vocab.json merges.txt; do
  cmp -s "$T/d32/tokenizer/$f" "$TOK/$f" && ok "tokenizer $f copied" || bad "tokenizer $f not copied"
done
[ -f "$T/d32/model_index.json" ] && [ -f "$T/d32/scheduler/scheduler_config.json" ] &&
  [ -f "$T/d32/unet/config.json" ] && ok "folder files" || bad "folder files missing"
set -- $("$PY" "$T/st_dtypes.py" "$T/s32.safetensors")
[ "$*" = "F32 I64 585 dg.text_encoder_config dg.unet_config dg.vae_config format" ] && ok "single-file header: $*" ||
  bad "single-file header: $*"

# 2. both layouts load and agree bit for bit; and agree with the fixtures
verify() { "$BIN" gen-model --verify "$@" --threads 2 2>"$T/verify.err" | grep -v '^layout' || { cat "$T/verify.err"; return 1; }; }
verify "$T/d32" >"$T/v_d32" || bad "verify diffusers f32"
verify "$T/s32.safetensors" --tokenizer "$TOK" >"$T/v_s32" || bad "verify single f32"
verify "$FIX/diffusers" >"$T/v_fix" || bad "verify fixture"
cat "$T/v_d32"
[ "$(wc -l <"$T/v_d32")" -eq 4 ] && ok "4 outputs" || bad "expected 4 verify lines"
cmp -s "$T/v_d32" "$T/v_s32" && ok "f32: layouts give identical outputs" || bad "f32 layouts differ"
cmp -s "$T/v_d32" "$T/v_fix" && ok "f32: same outputs as the fixture model" || bad "differs from fixture"
# the fixture's single file has no metadata: configs detected from the shapes
verify "$FIX/sd15-tiny.safetensors" --tokenizer "$TOK" >"$T/v_fix_s" || bad "verify fixture single file"
cmp -s "$T/v_fix_s" "$T/v_fix" && ok "fixture single file (detected configs) = fixture folder" ||
  bad "fixture single file differs"
verify "$FIX/sd15-tiny.safetensors" --tokenizer "$TOK" --config-dir "$FIX/diffusers" >"$T/v_fix_c" &&
  cmp -s "$T/v_fix_c" "$T/v_fix" && ok "single file with --config-dir" || bad "single file with --config-dir"

for dt in f16 bf16; do
  gen --dtype $dt --layout diffusers --seed 7 --tokenizer "$TOK" -o "$T/d_$dt" || bad "gen diffusers $dt"
  gen --dtype $dt --layout single --seed 7 -o "$T/s_$dt.safetensors" || bad "gen single $dt"
  DT=$(echo $dt | tr a-z A-Z)
  set -- $("$PY" "$T/st_dtypes.py" "$T/s_$dt.safetensors")
  [ "$1 $2" = "$DT I64" ] && ok "$dt stored as $DT" || bad "$dt file dtypes: $*"
  verify "$T/d_$dt" >"$T/v_d_$dt" || bad "verify diffusers $dt"
  verify "$T/s_$dt.safetensors" --tokenizer "$TOK" >"$T/v_s_$dt" || bad "verify single $dt"
  cmp -s "$T/v_d_$dt" "$T/v_s_$dt" && ok "$dt: layouts give identical outputs" || bad "$dt layouts differ"
  cmp -s "$T/v_d_$dt" "$T/v_d32" && bad "$dt outputs equal the f32 seed-1234 ones" || ok "$dt differs from seed 1234"
done

# 3. determinism
gen --dtype f16 --layout single --seed 7 -o "$T/s_f16b.safetensors" || bad "gen again"
cmp -s "$T/s_f16.safetensors" "$T/s_f16b.safetensors" && ok "same seed, same file" || bad "same seed differs"
gen --dtype f16 --layout single --seed 8 -o "$T/s_f16c.safetensors" || bad "gen seed 8"
cmp -s "$T/s_f16.safetensors" "$T/s_f16c.safetensors" && bad "seed ignored" || ok "other seed, other file"

# 4. a folder without tokenizer files still writes (with a note) and verifies its networks
gen --dtype f32 --layout diffusers --seed 3 -o "$T/notok" && grep -q "tokenizer" "$T/gen.err" &&
  [ -f "$T/notok/tokenizer/README.txt" ] && ok "no --tokenizer: note" || bad "no --tokenizer"
verify "$T/notok" >"$T/v_notok" && [ "$(wc -l <"$T/v_notok")" -eq 3 ] && ok "verify without tokenizer" ||
  bad "verify without tokenizer"

# 4b. --init torch (PyTorch's default layer init) and --qk-gain
gen --dtype f32 --layout diffusers --seed 5 --init torch --tokenizer "$TOK" -o "$T/dt" || bad "gen --init torch"
gen --dtype f32 --layout diffusers --seed 5 --init torch --qk-gain 2 --tokenizer "$TOK" -o "$T/dt2" ||
  bad "gen --init torch --qk-gain 2"
cat >"$T/st_torch.py" <<'EOF'
import json, math, struct, sys
from array import array
def load(p):
    with open(p, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        h = json.loads(f.read(n))
        d = f.read()
    h.pop('__metadata__', None)
    out = {}
    for k, v in h.items():
        if v['dtype'] == 'F32':
            a = array('f'); a.frombytes(d[v['data_offsets'][0]:v['data_offsets'][1]]); out[k] = (v['shape'], a)
    return out
bad = []
qk = ('to_q.weight', 'to_k.weight', 'q_proj.weight', 'k_proj.weight', 'to_q.bias', 'to_k.bias', 'q_proj.bias',
      'k_proj.bias')
for part in ('unet/diffusion_pytorch_model', 'vae/diffusion_pytorch_model', 'text_encoder/model'):
    t = load(sys.argv[1] + '/' + part + '.safetensors')
    t2 = load(sys.argv[2] + '/' + part + '.safetensors')
    for k, (sh, a) in t.items():
        n = len(a); m = sum(a) / n; sd = math.sqrt(sum((x - m) ** 2 for x in a) / n)
        if k.endswith('_embedding.weight'):      # nn.Embedding: N(0, 1)
            ok = abs(sd - 1) < 0.05 and abs(m) < 0.05
        elif len(sh) >= 2:                       # Linear / Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            b = 1 / math.sqrt(math.prod(sh[1:]))
            ok = max(abs(x) for x in a) <= b and (n < 500 or abs(sd / (b / math.sqrt(3)) - 1) < 0.1)
        elif k.endswith('.weight'):              # norm gamma
            ok = all(x == 1 for x in a)
        else:                                    # norm beta 0; layer bias uniform with its weight's fan_in
            w = t.get(k[:-4] + 'weight')
            if w and len(w[0]) >= 2:
                b = 1 / math.sqrt(math.prod(w[0][1:]))
                ok = max(abs(x) for x in a) <= b and max(abs(x) for x in a) > b / 4
            else:
                ok = all(x == 0 for x in a)
        a2 = t2[k][1]
        g = 2 if k.endswith(qk) else 1
        ok = ok and all(y == g * x for x, y in zip(a, a2))
        if not ok: bad.append(k)
print(len(bad), 'bad', bad[:3])
sys.exit(1 if bad else 0)
EOF
"$PY" "$T/st_torch.py" "$T/dt" "$T/dt2" && ok "--init torch scales; --qk-gain 2 doubles q/k only" || bad "--init torch scales"
verify "$T/dt" >"$T/v_dt" && [ "$(wc -l <"$T/v_dt")" -eq 4 ] && ok "verify --init torch model" || bad "verify --init torch"
cmp -s "$T/v_dt" "$T/v_d32" && bad "--init torch ignored" || ok "--init torch differs from the fixture init"

# 5. errors
"$BIN" gen-model --init xavier -o "$T/x" 2>/dev/null; [ $? -eq 2 ] && ok "bad init" || bad "bad init accepted"
"$BIN" gen-model --qk-gain -1 -o "$T/x" 2>/dev/null; [ $? -eq 2 ] && ok "bad qk gain" || bad "bad qk gain accepted"
"$BIN" gen-model --size huge -o "$T/x" 2>/dev/null; [ $? -eq 2 ] && ok "bad size" || bad "bad size accepted"
"$BIN" gen-model --dtype f8 -o "$T/x" 2>/dev/null; [ $? -eq 2 ] && ok "bad dtype" || bad "bad dtype accepted"
"$BIN" gen-model --seed -3 -o "$T/x" 2>/dev/null; [ $? -eq 2 ] && ok "bad seed" || bad "bad seed accepted"
"$BIN" gen-model --size tiny 2>/dev/null; [ $? -eq 2 ] && ok "no -o" || bad "missing -o accepted"
"$BIN" gen-model --verify "$T/nothing" 2>/dev/null; [ $? -eq 1 ] && ok "verify missing path" || bad "verify missing path"
head -c 100 "$T/s32.safetensors" >"$T/trunc.safetensors"
"$BIN" gen-model --verify "$T/trunc.safetensors" --tokenizer "$TOK" 2>/dev/null; [ $? -eq 1 ] && ok "verify truncated file" ||
  bad "verify truncated file"

# 6. the loader's refusals name the problem
cp "$T/s32.safetensors" "$T/model.ckpt"
"$BIN" gen-model --verify "$T/model.ckpt" --tokenizer "$TOK" 2>"$T/e1"; [ $? -eq 1 ] && grep -q "pickle" "$T/e1" &&
  ok "pickle checkpoint refused" || bad "pickle checkpoint: $(cat "$T/e1")"
mkdir -p "$T/empty"
"$BIN" gen-model --verify "$T/empty" 2>"$T/e2"; [ $? -eq 1 ] && grep -q "model_index.json" "$T/e2" &&
  ok "folder without model_index.json refused" || bad "empty folder: $(cat "$T/e2")"
rm "$T/d32/vae/diffusion_pytorch_model.safetensors"
"$BIN" gen-model --verify "$T/d32" 2>"$T/e3"; [ $? -eq 1 ] && grep -q "vae/diffusion_pytorch_model.safetensors" "$T/e3" &&
  ok "missing vae file named" || bad "missing vae: $(cat "$T/e3")"

echo "$fails failure(s)"
[ $fails -eq 0 ]
