"""Network architectures, their parameters, and trained-model folders.

SongExplorer's default network (its ``res-net`` plug-in, a Keras model named ``convolutional``)
turns audio into one decision per *context window*: a representation (waveform, spectrogram or
mel-cepstrum), a stack of valid 2-D convolutions, then "pan-frequency" convolutions, dropout, and
a final convolution whose kernel spans exactly one context's worth of frames. That makes it a
sliding-window classifier; here it is built **fully convolutionally**:

* input float32 ``(batch, ntics, nchannels)`` for any ``ntics >= context_tics``;
* output raw logits ``(batch, ntaps, nlabels)`` with
  ``ntaps = (ntics - context_tics) // stride_tics + 1``;
* tap ``j`` is the decision for the context window of ``context_tics`` tics starting at input tic
  ``j * stride_tics`` -- the window whose labelled point is tic
  ``j * stride_tics + context_tics // 2 + shiftby_tics`` (``shiftby`` > 0 puts more audio before
  the point).

``stride_tics`` is SongExplorer's *stride x downsample* (4 tics = 1.6 ms at 2500 Hz by default).
The same weights therefore serve training (``parallelize`` taps per example) and classification
(thousands of taps per call).

Architectures are plug-ins: :func:`register_architecture` adds one under a name, and
:func:`build_model` picks it from :attr:`ModelSpec.architecture`.

A trained model lives in a folder holding ``model.keras`` (the Keras 3 model) and ``model.json``
(labels, rate, channels, the :class:`ModelSpec`, the loss and the tic geometry), written
atomically by :func:`save_trained_model` and read by :func:`load_trained_model`.

TensorFlow/Keras are imported inside the functions that need them, so importing this module is
cheap.

The subpackage, one module per part: ``constants``, ``spec`` (ModelSpec), ``layers`` (DSP kernels
and custom Keras layers), ``builder`` (architecture registry, the convolutional network),
``inference`` (the matrix-product inference network), ``folders`` (trained-model folders). Every
name is importable from ``songexplorer_core.models`` as before.
"""

from songexplorer_core.models.constants import (  # noqa: F401
    MODEL_FORMAT,
    MODEL_FILE,
    METADATA_FILE,
    REPRESENTATIONS,
    CONNECTIONS,
    DROPOUT_KINDS,
    POOL_KINDS,
    NORMALIZATIONS,
    LOSSES,
    LOG_OFFSET,
    ModelError,
)
from songexplorer_core.models.spec import (  # noqa: F401
    parse_layers,
    _pair,
    _kernel_sizes,
    ModelSpec,
)
from songexplorer_core.models.layers import (  # noqa: F401
    _keras,
    hann_periodic,
    dft_kernel,
    hertz_to_mel,
    mel_matrix,
    dct_matrix,
    _register,
    _LAYER_CLASSES,
    _layer_classes,
)
from songexplorer_core.models.builder import (  # noqa: F401
    Architecture,
    ARCHITECTURES,
    register_architecture,
    get_architecture,
    _seeds,
    check_geometry,
    _convolutional_stride,
    build_convolutional,
    hidden_layer_names,
    build_model,
    count_parameters,
    receptive_field,
    _n2d_layers,
)
from songexplorer_core.models.inference import (  # noqa: F401
    FEW_OUTPUT_COLUMNS,
    LONG_KERNEL_FRAMES,
    MOST_BLOCKED_WASTE,
    MOST_IM2COL_WEIGHTS,
    MOST_IM2COL_WIDTH_RATIO,
    INFERENCE_METHODS,
    plan_convolution,
    _time_kernel,
    _blocked_kernel,
    time_convolution,
    _INFERENCE_CLASSES,
    _inference_classes,
    _conv_plan,
    inference_network,
)
from songexplorer_core.models.folders import (  # noqa: F401
    TrainedModel,
    new_trained_model,
    _replace_folder,
    write_into_new_folder,
    write_trained_model_files,
    save_trained_model,
    read_model_metadata,
    load_trained_model,
    write_labels_txt,
    read_labels_txt,
    model_identity,
    thresholds_model_folder,
)
