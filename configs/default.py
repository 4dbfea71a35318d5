"""Default configuration: documents every knob. Quick DeepFill v2 run on the embedded photos.

Runs on a 2-core CPU in a few minutes (a smaller generator at 128x128), so that a fresh checkout
trains, evaluates and writes samples end to end:

  python -m flowinpaint.main --config configs/default.py --workdir /tmp/flowinpaint

Any knob can be overridden on the command line, e.g. `--config.num_train_steps=1000`.
The paper-size DeepFill v2 run is configs/deepfill_v2.py.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.seed = 0  # Derives every PRNG key: init, data order, crops, masks, step noise.

  # --- Model (flowinpaint.models.registry names) -----------------------------------------
  config.model = ml_collections.ConfigDict()
  config.model.name = "deepfill_v2"
  config.model.cnum = 24  # Generator width; the paper's DeepFill v2 uses 48.
  config.model.ca_chunk_size = 0  # Contextual attention foreground chunk (0 = one chunk).

  # --- Data ------------------------------------------------------------------------------------
  config.data = ml_collections.ConfigDict()
  config.data.dataset = "embedded"  # 'embedded' (scikit-image photos) | 'folder' | 'tfds'.
  config.data.path = ""  # Image folder for dataset='folder'.
  config.data.tfds_name = ""  # e.g. 'places365_small' for dataset='tfds'.
  config.data.tfds_split = "train"
  config.data.tfds_data_dir = ""  # Empty: tfds' default data dir.
  config.data.image_key = "image"
  config.data.eval_path = ""  # Folder of held-out images for eval; empty: the training source.
  config.data.num_workers = 2  # Loader worker threads/processes (0 = in the main process).
  config.data.mask_kind = "free_form_and_box"  # 'free_form' | 'box' | 'glcic_box' | 'outpaint' ...
  config.image_size = 128  # Square training crops.
  config.batch_size = 4  # Global batch, split over every device of every host.

  # --- Schedule ---------------------------------------------------------------------------------
  config.num_train_steps = 300
  # Phase boundaries (GLCIC's schedule): steps [0, R) train the generator with the
  # reconstruction loss only, [R, R + D) the discriminator only, then both jointly.
  config.phases = ml_collections.ConfigDict()
  config.phases.reconstruction_steps = 0
  config.phases.discriminator_steps = 0
  config.d_steps_per_g_step = 1  # Discriminator updates per generator update (joint phase).

  # --- Losses -----------------------------------------------------------------------------------
  config.loss = ml_collections.ConfigDict()
  # 'l1' (whole image) | 'mse_hole' | 'discounted_l1' | 'l1_over_hole' (EdgeConnect: L1 / hole
  # fraction) | 'pconv' | flow losses ('epe', 'flow_l1_hard').
  config.loss.reconstruction = "l1"
  config.loss.reconstruction_weight = 1.0
  config.loss.coarse_weight = 1.0  # Weight of the coarse stage's reconstruction loss.
  config.loss.adversarial = "hinge"  # 'hinge' | 'bce' | 'nsgan' | 'lsgan' | 'wgan_gp' | 'none'.
  config.loss.adversarial_weight = 1.0  # DeepFill v2 uses 1:1 with L1.
  config.loss.gp_weight = 10.0  # WGAN-GP gradient penalty (adversarial='wgan_gp' only).
  config.loss.discount_gamma = 0.99  # Spatially discounted L1 (reconstruction='discounted_l1').
  # The discriminator's fake: 'composite' (output pasted into the image) | 'output' (raw).
  config.loss.discriminator_input = "composite"
  config.loss.feature_matching_weight = 0.0  # Discriminator feature matching (EdgeConnect G1).
  # ImageNet-VGG feature losses (flowinpaint/train/feature_losses.py): 'none' | 'pconv' (VGG-16
  # pool1-3 on output and composite) | 'structure_flow' (VGG-19 content, hole style, sampling
  # correctness) | 'edge_connect' (VGG-19 content and hole style on [0, 1] images). They need
  # torchvision VGG weights from a local file (`vgg_weights`, e.g. vgg16-397923af.pth /
  # vgg19-dcbb9e9d.pth; never downloaded); without one they are off and the log says so. A
  # weight of 0 switches a term off.
  config.loss.feature_recipe = "none"
  config.loss.perceptual_weight = 0.0
  config.loss.style_weight = 0.0
  config.loss.correctness_weight = 0.0  # 'structure_flow' only: needs a generator 'flow'.
  config.loss.vgg_weights = ""

  # --- Optimisers -------------------------------------------------------------------------------
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"  # 'adam' | 'adadelta'.
  config.optimizer.g_learning_rate = 1e-4
  config.optimizer.d_learning_rate = 1e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  config.optimizer.grad_clip_norm = 0.0  # 0 = no clipping.

  # --- Precision ---------------------------------------------------------------------------------
  config.dtype = "float32"  # Compute dtype: 'float32' | 'bfloat16' (params stay float32).

  # --- Logging, evaluation, checkpoints ---------------------------------------------------------
  config.log_every_steps = 20
  config.eval_every_steps = 150
  config.num_eval_images = 8  # Fixed images x fixed seeded masks.
  config.eval_mask_seed = 2024
  config.num_sample_images = 4  # Rows in the PNG sample grid.
  config.checkpoint_every_steps = 150
  config.keep_checkpoints = 3
  config.async_checkpointing = True
  # Start the generator from other runs (fine-tuning; chaining stages): a workdir or checkpoint,
  # or PART=PATH,PART=PATH for top-level parts of the generator. Only on a fresh workdir.
  config.init_generator_from = ""
  config.nan_policy = "halt"  # 'halt': stop with an error when a loss becomes NaN or Inf.
  return config


def long_run_reporting(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Logging, evaluation and checkpoint intervals of the paper-scale configs."""
  config.log_every_steps = 100
  config.eval_every_steps = 5_000
  config.checkpoint_every_steps = 5_000
  config.num_eval_images = 64
  config.num_sample_images = 8
  return config
