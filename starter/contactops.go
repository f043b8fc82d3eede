package starter

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/cairnhq/cairn/crm"
)

// Contact operations by an operator: each records the same events a journey's action does
// (tag_added, field_changed, list_subscribed, …), through the same CRM functions, under the
// request's Idempotency-Key: a request repeated with the same key changes nothing more and
// answers as the first did.

// IdempotencyHeader carries the key of a contact operation.
const IdempotencyHeader = "Idempotency-Key"

// contactAction reads the contact of the URL and the request's idempotency key into the
// ledger's key for op: api:<op>:<contact>:<key>.
func (a *API) contactAction(r *http.Request, op string) (crm.Action, error) {
	key := strings.TrimSpace(r.Header.Get(IdempotencyHeader))
	if key == "" {
		return crm.Action{}, badRequest("header "+IdempotencyHeader, "an Idempotency-Key header is required: a repeated request with the same key changes nothing more")
	}
	if len(key) > maxMessageID {
		return crm.Action{}, tooLong("header "+IdempotencyHeader, len(key), maxMessageID)
	}
	if err := checkText("header "+IdempotencyHeader, key); err != nil {
		return crm.Action{}, err
	}
	c, err := crm.ContactByExternalID(r.Context(), a.DB, r.PathValue("id"))
	if err != nil {
		return crm.Action{}, err
	}
	return crm.Action{Key: "api:" + op + ":" + strconv.FormatInt(c.ID, 10) + ":" + key, ContactID: c.ID, At: a.Now()}, nil
}

// answerAction replies with what the action did and the contact as it is now.
func (a *API) answerAction(w http.ResponseWriter, r *http.Request, act crm.Action, res crm.ActionResult) error {
	c, err := crm.ContactByID(r.Context(), a.DB, act.ContactID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"contact": c, "result": res.Detail, "replayed": res.Replayed})
	return nil
}

// contactAddTag serves POST /v1/contacts/{id}/tags {"tag": "vip"}.
func (a *API) contactAddTag(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Tag string `json:"tag"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if strings.TrimSpace(body.Tag) == "" {
		return badRequest("tag", "tag is required")
	}
	act, err := a.contactAction(r, "add_tag")
	if err != nil {
		return err
	}
	res, err := crm.AddTag(r.Context(), a.DB, act, body.Tag)
	if err != nil {
		return err
	}
	return a.answerAction(w, r, act, res)
}

// contactRemoveTag serves DELETE /v1/contacts/{id}/tags/{tag}.
func (a *API) contactRemoveTag(w http.ResponseWriter, r *http.Request) error {
	act, err := a.contactAction(r, "remove_tag")
	if err != nil {
		return err
	}
	res, err := crm.RemoveTag(r.Context(), a.DB, act, r.PathValue("tag"))
	if err != nil {
		return err
	}
	return a.answerAction(w, r, act, res)
}

// contactSetFields serves PATCH /v1/contacts/{id}/fields {"fields": {"plan": "pro", "coupon": null}}:
// the fields given are set (null clears one), the others kept.
func (a *API) contactSetFields(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Fields map[string]any `json:"fields"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if len(body.Fields) == 0 {
		return badRequest("fields", "fields is required: a mapping of field to value (null clears it)")
	}
	if len(body.Fields) > 1000 {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_request", Path: "fields", Message: "at most 1000 fields at once"}
	}
	for k := range body.Fields {
		if strings.TrimSpace(k) == "" {
			return badRequest("fields", "a field needs a name")
		}
	}
	act, err := a.contactAction(r, "update_fields")
	if err != nil {
		return err
	}
	res, err := crm.UpdateFields(r.Context(), a.DB, act, body.Fields)
	if err != nil {
		return err
	}
	return a.answerAction(w, r, act, res)
}

// contactSubscribe serves POST /v1/contacts/{id}/subscriptions {"list": "newsletter",
// "subscribed": true}.
func (a *API) contactSubscribe(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		List       string `json:"list"`
		Subscribed *bool  `json:"subscribed"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if strings.TrimSpace(body.List) == "" {
		return badRequest("list", "list is required")
	}
	if body.Subscribed == nil {
		return badRequest("subscribed", "subscribed is required: true or false")
	}
	op := "unsubscribe"
	if *body.Subscribed {
		op = "subscribe"
	}
	act, err := a.contactAction(r, op)
	if err != nil {
		return err
	}
	res, err := crm.SetSubscription(r.Context(), a.DB, act, body.List, *body.Subscribed)
	if err != nil {
		return err
	}
	return a.answerAction(w, r, act, res)
}
