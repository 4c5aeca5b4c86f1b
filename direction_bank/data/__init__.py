"""Data files dbank ships: OpenAI CLIP's BPE merges file (MIT, see CLIP-LICENSE.txt)."""
