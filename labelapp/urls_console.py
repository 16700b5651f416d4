"""Scientist console (/console/): pages, actions, exports. Every view is scientist-only."""

from django.urls import path

from labelapp.views.console import (
    actions,
    campaign,
    candidates,
    curation,
    exports,
    models,
    news,
    science,
    shift,
    talk,
    tokens,
    volunteers,
    zooniverse,
)

urlpatterns = [
    # campaign overview, progress of long tasks, audit log
    path("", campaign.campaign, name="console-campaign"),
    path("progress.json", campaign.progress_json, name="console-progress"),
    path("audit/", campaign.audit_log, name="console-audit"),
    path("volunteers/", volunteers.volunteers, name="console-volunteers"),
    path("volunteers/suspicious/", volunteers.suspicious, name="console-suspicious"),
    path("volunteers/<int:pk>/void/", volunteers.void_votes, name="console-void-votes"),
    path("volunteers/block/", volunteers.block_range, name="console-block-range"),
    # models: cards, metrics across rounds, promote / roll back, downloads
    path("models/", models.model_list, name="console-models"),
    path("models/<int:pk>/", models.model_detail, name="console-model"),
    path("models/shift/", shift.shift, name="console-shift"),
    path("models/encoders/<int:pk>/", models.encoder_detail, name="console-encoder"),
    path("models/encoders/<int:pk>/retire/", models.encoder_retire, name="console-encoder-retire"),
    path("models/<int:pk>/promote/", models.model_promote, name="console-model-promote"),
    path("models/<int:pk>/card.json", exports.model_card, name="console-model-card"),
    path("models/<int:pk>/weights.pt", exports.model_weights, name="console-model-weights"),
    # the science: N(z) and its spikes, external validation
    path("redshift/", science.redshift, name="console-redshift"),
    path("external/", science.external, name="console-external"),
    # Zooniverse behind the platform: imports, labels against DEE's fixed-count rule
    path("zooniverse/", zooniverse.zooniverse, name="console-zooniverse"),
    # candidates: attribution gallery, everything about one candidate
    path("gallery/", candidates.gallery, name="console-gallery"),
    path("candidates/<int:detectid>/", candidates.candidate, name="console-candidate"),
    path(
        "candidates/<int:detectid>/attribution/<int:pk>.png",
        candidates.attribution_png,
        name="console-attribution",
    ),
    path("candidates/<int:detectid>/flag/", curation.candidate_flag, name="console-candidate-flag"),
    # curation: the expert queue and the gold standards
    path("expert/", curation.expert_queue, name="console-expert"),
    path("expert/answer/", curation.expert_answer, name="console-expert-answer"),
    path("gold/", curation.gold_list, name="console-gold"),
    path("gold/<int:detectid>/", curation.gold_edit, name="console-gold-edit"),
    # Talk: open flags, hashtag counts, gold / expert from a discussion
    path("talk/", talk.talk_console, name="console-talk"),
    path(
        "talk/candidates/<int:detectid>/",
        talk.talk_candidate_action,
        name="console-talk-action",
    ),
    # steering: rounds, acquisition settings, retrain and scoring
    path("actions/round/", actions.start_round, name="console-start-round"),
    path("actions/retrain/", actions.trigger_retrain, name="console-retrain"),
    path("actions/pretrain/", actions.trigger_pretrain, name="console-pretrain"),
    path("actions/score/", actions.trigger_scoring, name="console-score"),
    path("settings/acquisition/", actions.acquisition_settings, name="console-acquisition"),
    path("settings/retrain/", actions.retrain_settings, name="console-retrain-settings"),
    path("settings/scoring/", actions.scoring_settings, name="console-scoring-settings"),
    path("settings/shift/", actions.shift_settings, name="console-shift-settings"),
    path(
        "settings/self-training/",
        actions.self_training_settings,
        name="console-self-training-settings",
    ),
    # exports
    path("exports/", exports.exports, name="console-exports"),
    path("exports/catalogue.<str:fmt>", exports.export_catalogue, name="console-export-catalogue"),
    path("exports/classifications.csv", exports.export_votes, name="console-export-votes"),
    # tokens for the science API (/api/science/v1/)
    path("tokens/", tokens.token_list, name="console-tokens"),
    path("tokens/<int:pk>/revoke/", tokens.token_revoke, name="console-token-revoke"),
    # news for volunteers (shown on the public results page)
    path("news/", news.news_list, name="console-news"),
    path("news/<int:pk>/", news.news_edit, name="console-news-edit"),
    path("news/<int:pk>/delete/", news.news_delete, name="console-news-delete"),
]
