"""Explanations for MRE Lens: why this relation, and did the image matter? Takes a model and a post, returns plain
data (numpy arrays, dataclasses); nothing here draws with Streamlit or touches the label store. A model is read only
through model.explainable's interface (logits, word embeddings, visual input layout, token-visual attention), which
IFAformer and MEGA implement.

    inputs = encode_post(model, tokenizer, record, feature_cache)
    predict_post(model, inputs)                  label, probabilities, margin, entropy
    token_object_attention(model, inputs)        text x visual attention per layer/head, head means, rollout
    attribute_tokens(model, inputs)              LayerIntegratedGradients on the word embeddings (+ delta)
    attribute_visual(model, inputs)              occlusion / IG per crop and per 7x7 image region
    faithfulness(model, inputs, attribution)     ERASER comprehensiveness / sufficiency vs random
    image_reliance(model, inputs, others)        p(pred) without the image and with k other posts' images
    explain_post(model, tokenizer, record, ...)  all of the above, timed, with a JSON-able summary()
    shuffle_table(runs), ablation_table(runs)    the paper's Tables 1 and 2 from stored evaluation runs
Figures (Plotly) are in explain.figures. Plausibility against rationales (ERASER token metrics, pointing game, mass
in the evidence box) is explain.plausibility (`python -m explain.plausibility`), imported on its own so that it runs
as a module.
"""

from explain.attention import AttentionMaps, token_object_attention
from explain.attribution import TokenAttribution, VisualAttribution, attribute_tokens, attribute_visual
from explain.bundle import ExplanationBundle, explain_post
from explain.faithfulness import Faithfulness, faithfulness
from explain.inputs import PostInputs, Prediction, encode_post, predict_post
from explain.reliance import ImageReliance, choose_other_records, image_reliance
from explain.tables import ablation_table, shuffle_table

__all__ = [
    "AttentionMaps",
    "ExplanationBundle",
    "Faithfulness",
    "ImageReliance",
    "PostInputs",
    "Prediction",
    "TokenAttribution",
    "VisualAttribution",
    "ablation_table",
    "attribute_tokens",
    "attribute_visual",
    "choose_other_records",
    "encode_post",
    "explain_post",
    "faithfulness",
    "image_reliance",
    "predict_post",
    "shuffle_table",
    "token_object_attention",
]
