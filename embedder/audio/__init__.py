"""Audio in: decoding and resampling (``decode``), the mel front-end (``frontend``, its settings
in ``frontend_config``) and musical attributes measured from the decoded signal (``attributes``).
Imports nothing else of mre."""
