"""Video object removal: IO, optical flow, flow completion, propagation, the removal pipeline.

  from flowinpaint.video import pipeline
  out = pipeline.remove_clip(frames, masks, flow_estimator=..., flow_completer=...,
                             inpainter=...)

Submodules: io (decode/encode), flow (FlowEstimator, DISFlow, FarnebackFlow), flow_completion
(FlowCompleter, LaplacianFlowCompleter), propagation (propagate, on device), pipeline;
dfvi_propagation (the DFVI authors' propagation and key frames) and dfvi (their DFC-Net stages as
a completer, and `preset_parts` for `remove --preset dfvi`).
"""
