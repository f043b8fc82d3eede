package journey

import (
	"gopkg.in/yaml.v3"
)

// actions reads the action kinds of a step mapping (add_tag and send_email are read with
// the step itself).
func (d *decoder) actions(f map[string]*yaml.Node, s *Step, path string) {
	name := func(kind string, dst *string) {
		if v := f[kind]; v != nil {
			p := path + "." + kind
			if *dst = d.str(v, p); *dst == "" && v.Kind == yaml.ScalarNode {
				d.fail(v, p, "needs a value")
			}
		}
	}
	name(KindRemoveTag, &s.RemoveTag)
	name(KindSubscribe, &s.Subscribe)
	name(KindUnsubscribe, &s.Unsubscribe)
	name(KindAddNote, &s.AddNote)
	name(KindStartJourney, &s.StartJourney)
	name(KindAddToAudience, &s.AddToAudience)
	name(KindRemoveFromAudience, &s.RemoveFromAudience)

	if v := f[KindUpdateFields]; v != nil {
		p := path + "." + KindUpdateFields
		if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
			d.fail(v, p, "must be a mapping of field: value")
		} else if !d.tooMany(v, p, "fields") {
			s.UpdateFields = map[string]any{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k := v.Content[i].Value
				if v.Content[i+1].Tag == "!!null" {
					s.UpdateFields[k] = nil // clears the field
					continue
				}
				s.UpdateFields[k] = d.scalar(v.Content[i+1], p+"."+k)
			}
		}
	}
	if v := f[KindAdjustScore]; v != nil {
		p := path + "." + KindAdjustScore
		s.AdjustScore = &ScoreChange{}
		if v.Kind == yaml.ScalarNode {
			s.AdjustScore.By = d.number(v, p)
		} else if g := d.fields(v, p, "by", "score"); g != nil {
			if g["by"] == nil {
				d.fail(v, p+".by", "is required")
			} else {
				s.AdjustScore.By = d.number(g["by"], p+".by")
			}
			if g["score"] != nil {
				s.AdjustScore.Score = d.str(g["score"], p+".score")
			}
		}
		if s.AdjustScore.By == 0 && len(d.probs) == 0 {
			d.fail(v, p, "adds nothing: give a non-zero number such as +5 or -10")
		}
	}
	if v := f[KindCreateDeal]; v != nil {
		p := path + "." + KindCreateDeal
		s.CreateDeal = &Deal{}
		if g := d.fields(v, p, "title", "pipeline", "stage", "value", "currency", "owner"); g != nil {
			d.required(g, v, p, "title", "pipeline", "stage")
			s.CreateDeal.Title = d.optStr(g["title"], p+".title")
			s.CreateDeal.Pipeline = d.optStr(g["pipeline"], p+".pipeline")
			s.CreateDeal.Stage = d.optStr(g["stage"], p+".stage")
			s.CreateDeal.Currency = d.optStr(g["currency"], p+".currency")
			s.CreateDeal.Owner = d.optStr(g["owner"], p+".owner")
			if g["value"] != nil {
				s.CreateDeal.Value = d.number(g["value"], p+".value")
			}
		}
	}
	if v := f[KindMoveDeal]; v != nil {
		p := path + "." + KindMoveDeal
		s.MoveDeal = &DealMove{}
		if g := d.fields(v, p, "pipeline", "stage"); g != nil {
			d.required(g, v, p, "pipeline", "stage")
			s.MoveDeal.Pipeline = d.optStr(g["pipeline"], p+".pipeline")
			s.MoveDeal.Stage = d.optStr(g["stage"], p+".stage")
		}
	}
	if v := f[KindCreateTask]; v != nil {
		p := path + "." + KindCreateTask
		s.CreateTask = &Task{}
		if g := d.fields(v, p, "title", "assignee", "due_in"); g != nil {
			d.required(g, v, p, "title", "assignee")
			s.CreateTask.Title = d.optStr(g["title"], p+".title")
			s.CreateTask.Assignee = d.optStr(g["assignee"], p+".assignee")
			if g["due_in"] != nil {
				s.CreateTask.DueIn = d.duration(g["due_in"], p+".due_in")
			}
		}
	}
	for _, kind := range []string{KindSendSMS, KindNotify} {
		v := f[kind]
		if v == nil {
			continue
		}
		p := path + "." + kind
		m := &Message{}
		if v.Kind == yaml.ScalarNode {
			m.Text = d.str(v, p)
		} else if g := d.fields(v, p, "text", "channel", "if_capped", "transactional"); g != nil {
			d.required(g, v, p, "text")
			m.Text = d.optStr(g["text"], p+".text")
			m.Channel = d.optStr(g["channel"], p+".channel")
			m.SendRules = d.sendRules(g, p)
		}
		if kind == KindSendSMS {
			s.SendSMS = m
		} else {
			s.Notify = m
		}
	}
}

func (d *decoder) required(f map[string]*yaml.Node, n *yaml.Node, path string, keys ...string) {
	for _, k := range keys {
		if f[k] == nil {
			d.fail(n, path+"."+k, "is required")
		}
	}
}

func (d *decoder) optStr(n *yaml.Node, path string) string {
	if n == nil {
		return ""
	}
	return d.str(n, path)
}
