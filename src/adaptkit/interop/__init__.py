"""Interop with other tools: export a run's result (diffusers, peft, kohya/LyCORIS, single-file),
import kohya/LyCORIS adapters, and describe a result in a Hugging Face model card.

One module per format (:mod:`.kohya_lora`, :mod:`.lycoris_loha`, :mod:`.single_file`, :mod:`.native`),
the shared kohya key layout in :mod:`.kohya_keys`, header metadata in :mod:`.metadata`.
"""
