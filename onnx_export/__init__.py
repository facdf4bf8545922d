"""Export trained JEN-1 models to an ONNX model bundle (jenbridge/bundle.py) for the torch-free
engine, and check the bundle's parity with torch.

  sources.py        the torch models: trained weights files, or random weights
  graphs.py         export of each graph (dynamo exporter, dynamic batch/length, single file)
  files.py          ONNX files on disk: 2 GB limit, external data, single-file folding
  fp16.py           fp16 weight storage (Cast to fp32 in the graph, folded by ONNX Runtime)
  int8.py           int8 weight storage, per-channel scales (Cast * scale, folded likewise)
  dft_basis.py      STFT/iSTFT bases rebuilt in the graph from small tables (int8 bundles)
  bundle_writer.py  the bundle folder, written atomically, with its manifest
  parity.py         ONNX Runtime vs torch, per graph and through the whole sampler pipeline
  quantize.py       dynamic int8 variants (MatMul/Gemm), measured, not shipped

Command line: `python -m onnx_export ...` = `jenbridge export ...`.
"""
