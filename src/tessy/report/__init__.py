"""Is the data on-policy? Figures over SFT datasets, and the report and terminal views of them."""
