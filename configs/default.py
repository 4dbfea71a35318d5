"""Default configuration: documents every knob. Quick DeepFill v2 run on the embedded photos.

Runs on a 2-core CPU in about the time of 300 adversarial steps (a smaller generator at
128x128), so that a fresh checkout trains, evaluates and writes samples end to end and visibly
learns:

  python -m flowinpaint.main --config configs/default.py --workdir /tmp/flowinpaint

The quick run's recipe (get_config) differs from DeepFill v2's (base_config) in three places:
400 reconstruction-only steps (GLCIC's phase 1) at a generator rate of 1e-3 before 100 steps of
DeepFill v2's hinge + L1 at 1e-4, and training crops at the evaluation images' scale (squares of
75-100 % of each photo's short side resized to 128, not 128-pixel windows at the photos' own
resolution). A reconstruction step costs about half an adversarial one (no discriminator), so
the 500 steps fit in the time of the 300 adversarial steps the run used to make; see
experiments/default_run/README.md for the curves of both recipes.

Any knob can be overridden on the command line, e.g. `--config.num_train_steps=1000`.
The paper-size DeepFill v2 run is configs/deepfill_v2.py.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Every knob, documented; what the model configs (deepfill_v2.py, glcic.py, ...) start from."""
  config = ml_collections.ConfigDict()

  config.seed = 0  # Derives every PRNG key: init, data order, crops, masks, step noise.

  # --- Model (flowinpaint.models.registry names) -----------------------------------------
  config.model = ml_collections.ConfigDict()
  config.model.name = "deepfill_v2"
  config.model.cnum = 24  # Generator width; the paper's DeepFill v2 uses 48.
  # Contextual attention (DeepFill): foreground tile in positions (0 = chosen from the sizes
  # under the score-memory budget, in bytes; 0 = no bound).
  config.model.ca_chunk_size = 0
  config.model.ca_max_score_bytes = 2 * 1024**3

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
  # 0: crops at the images' own resolution (DeepFill). f in (0, 1]: squares whose side is a
  # random fraction in [f, 1] of the image's short side, resized to image_size; near 1 this is
  # the scale of the evaluation images (each image's central square resized to image_size).
  config.data.min_crop_fraction = 0.0
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
  # Generator rate during the reconstruction phase (its first phases.reconstruction_steps
  # updates), then g_learning_rate; 0 = g_learning_rate throughout.
  config.optimizer.reconstruction_g_learning_rate = 0.0
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


def get_config() -> ml_collections.ConfigDict:
  """The README's first command: base_config() plus the quick run's recipe (see the docstring)."""
  config = base_config()
  config.num_train_steps = 500
  config.phases.reconstruction_steps = 400
  config.optimizer.reconstruction_g_learning_rate = 1e-3
  config.data.min_crop_fraction = 0.75
  config.eval_every_steps = 100  # Samples and scores at the end of the warm-up (400) too.
  config.checkpoint_every_steps = 250
  return config


def long_run_reporting(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Logging, evaluation and checkpoint intervals of the paper-scale configs."""
  config.log_every_steps = 100
  config.eval_every_steps = 5_000
  config.checkpoint_every_steps = 5_000
  config.num_eval_images = 64
  config.num_sample_images = 8
  return config
