"""Science workloads: datasets, neural forecasting (neuralforecast), TF hydrology, metrics, plots, stages."""
