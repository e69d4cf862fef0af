"""The PyTorch side: HuggingFace T5ForConditionalGeneration, trained on CPU.

Run as its own process by bench/run.py so that its start-up time and peak
memory are measured like the Mesh-TF CLI's:

  python -m bench.hf_t5 --d_model 256 --d_ff 1024 --num_layers 4 \
      --num_heads 4 --d_kv 64 --vocab 4196 --steps 12

The configuration is gin/arch/transformer.gin's T5.1.0: ReLU feed-forward,
tied input/output embeddings (T5's logit rescaling by d_model^-0.5 included),
relative attention bias with 32 buckets up to distance 128, dropout 0.1,
random initialization; the embedding padded to a multiple of 128 rows as
Mesh-TF pads it. Batches are random token ids (the lengths and batch are
what matter for speed). The optimizer is transformers' Adafactor with its
relative step size (no momentum, factored second moments, parameter scaling,
update clipping at 1.0), the counterpart of mesh_tensorflow's
AdafactorOptimizer defaults.

Prints one line per step, `hf step, loss[LOSS][STEP]`, flushed at once.
torch and transformers are optional bench extras, imported here only.
"""

import argparse
import sys


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  for key in ("d_model", "d_ff", "num_layers", "num_heads", "d_kv"):
    p.add_argument("--" + key, type=int, required=True)
  p.add_argument(
      "--vocab",
      type=int,
      required=True,
      help="vocabulary size before padding to 128")
  p.add_argument("--inputs", type=int, default=512)
  p.add_argument("--targets", type=int, default=114)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--steps", type=int, default=12)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--dropout", type=float, default=0.1)
  p.add_argument(
      "--dtype",
      default="float32",
      choices=["float32", "bfloat16"],
      help="bfloat16: torch.autocast activations, fp32 weights")
  args = p.parse_args(argv)
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top
    from transformers.optimization import Adafactor  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    print("hf_t5: skipped, torch/transformers not installed (%s)" % e)
    return 3
  torch.set_num_threads(args.threads)
  try:
    torch.set_num_interop_threads(args.threads)
  except RuntimeError:
    pass
  torch.manual_seed(0)
  padded = -(-args.vocab // 128) * 128
  config = transformers.T5Config(
      vocab_size=padded,
      d_model=args.d_model,
      d_kv=args.d_kv,
      d_ff=args.d_ff,
      num_layers=args.num_layers,
      num_decoder_layers=args.num_layers,
      num_heads=args.num_heads,
      relative_attention_num_buckets=32,
      relative_attention_max_distance=128,
      dropout_rate=args.dropout,
      feed_forward_proj="relu",
      tie_word_embeddings=True,
      decoder_start_token_id=0,
      pad_token_id=0,
      eos_token_id=1)
  model = transformers.T5ForConditionalGeneration(config)
  model.train()
  opt = Adafactor(
      model.parameters(),
      lr=None,
      relative_step=True,
      scale_parameter=True,
      warmup_init=False)
  gen = torch.Generator().manual_seed(0)
  for step in range(args.steps):
    # [batch, inputs] and [batch, targets] ids, never pad (0) or EOS (1).
    inputs = torch.randint(
        2, args.vocab, (args.batch, args.inputs), generator=gen)
    labels = torch.randint(
        2, args.vocab, (args.batch, args.targets), generator=gen)
    with torch.autocast(
        "cpu", dtype=torch.bfloat16, enabled=args.dtype == "bfloat16"):
      loss = model(input_ids=inputs, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    print("hf step, loss[%.6f][%d]" % (loss.item(), step), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
