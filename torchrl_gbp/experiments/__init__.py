"""The paper's reproduction layer: recipes, protocols, pipeline steps, ``reproduce``, reporting, the diagnostics
report and the command line. It imports the library (:mod:`torchrl_gbp`); the library never imports it."""
