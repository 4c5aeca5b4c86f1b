"""The studio: a Gradio page over the Bank and the Editor (extra [studio]). `actions` holds what
it can do as plain calls; `app` lays them out."""
