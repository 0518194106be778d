"""The fusion methods: one registry (``registry``), the classical baselines
(``classical``) and the task presets (``presets``)."""
